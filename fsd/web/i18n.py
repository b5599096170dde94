"""Russian (default) and English for the cabinet: UI strings keyed by their English text, and the
service layer's English error messages translated by pattern (falling back to the English text)."""

from __future__ import annotations

import re

LANGS = ("ru", "en")

RU: dict[str, str] = {
    "Personal cabinet": "Личный кабинет", "Sign in": "Вход", "Sign out": "Выход", "Login": "Логин",
    "Password": "Пароль", "login@domain": "логин@домен", "Settings": "Настройки", "Employees": "Сотрудники",
    "Departments": "Отделы", "Numbers": "Номера", "IVR menus": "Голосовые меню", "Schedule": "Расписание",
    "Prompts": "Записи", "History": "История звонков", "Statistics": "Статистика", "Voicemail": "Голосовая почта",
    "Callbacks": "Обратные звонки", "Audit log": "Журнал изменений", "API tokens": "API-токены",
    "Letters": "Письма", "My profile": "Мой профиль", "Add employee": "Добавить сотрудника",
    "Name": "Имя сотрудника", "Title": "Название",
    "Surname and first name, or first name only": "Фамилия и имя (можно только имя)",
    "Create new password": "Создать новый пароль", "Position": "Должность", "Rights": "Права в системе",
    "Extension": "Внутренний номер", "E-mail": "E-mail", "Mobile phone": "Моб. телефон",
    "Forwarding": "Переадресация", "Forwarding delay, s": "Задержка переадресации, с", "off": "выключена",
    "instant": "моментальная", "delayed": "с задержкой", "admin": "Администратор", "user": "Пользователь",
    "limited": "Ограниченный пользователь", "Save": "Сохранить", "Create": "Создать", "Delete": "Удалить",
    "Cancel": "Отмена", "Edit": "Изменить", "users": "пользователей", "of": "из",
    "The employee has been created": "Сотрудник создан",
    "The password is shown only once. Copy it now.": "Пароль показан один раз. Скопируйте его сейчас.",
    "The letter with the credentials is queued to": "Письмо с реквизитами поставлено в очередь на",
    "No e-mail given: no letter will be sent.": "E-mail не указан: письмо не отправляется.",
    "Letters that could not be sent": "Письма, которые не удалось отправить", "Retry": "Повторить",
    "Status": "Статус", "Attempts": "Попытки", "Error": "Ошибка", "Recipient": "Получатель",
    "Subject": "Тема", "pending": "в очереди", "sent": "отправлено", "failed": "ошибка",
    "in_progress": "выполняется", "completed": "выполнен", "cancelled": "отменён",
    "Members": "Сотрудники отдела", "member": "в отделе", "Order": "Порядок", "Up": "Выше", "Down": "Ниже",
    "Strategy": "Распределение звонков", "simultaneous": "Всем сразу", "evenly": "Равномерно",
    "in_order": "По очереди", "cascade": "По нарастающей", "Delay between members, s": "Задержка переключения, с",
    "No answer within, s": "Если не ответили в течение, с", "On no answer": "При неответе",
    "voicemail": "Голосовая почта", "forward_external": "Перевести на внешний номер",
    "transfer_employee": "Перевести на сотрудника", "transfer_department": "Перевести в отдел",
    "External number": "Внешний номер", "Employee": "Сотрудник", "Department": "Отдел",
    "For impatient callers": "Для нетерпеливых клиентов",
    "After this many seconds of waiting offer a callback, staying on the line or voicemail":
        "Через столько секунд ожидания предложить обратный звонок, ожидание на линии или голосовую почту",
    "Offer a callback": "Предлагать обратный звонок", "Offer voicemail": "Предлагать голосовую почту",
    "Threshold, s": "Порог, с", "Voicemail greeting": "Приветствие автоответчика", "standard": "стандартное",
    "Add department": "Добавить отдел", "Short number": "Короткий номер", "Number": "Номер",
    "Mode": "Режим", "schedule": "По расписанию компании", "always": "Круглосуточно", "Destination": "Куда",
    "ivr": "Голосовое меню", "employee": "Сотрудник", "department": "Отдел", "Out of hours": "В нерабочее время",
    "message_hangup": "Сообщение и отбой", "forward": "Переадресация на номер", "destination": "Другое направление",
    "Greeting instead of ring-back": "Приветствие вместо гудка", "Upload greeting": "Загрузить приветствие",
    "Scheme": "Схема", "Call flow scheme": "Схема приёма звонка", "Main": "Основной",
    "Out-of-hours message": "Сообщение в нерабочее время", "Menu": "Меню", "Add menu": "Добавить меню",
    "Key": "Клавиша", "Action": "Действие", "Target": "Цель", "dial_extension": "Набор внутреннего номера",
    "menu": "Другое меню", "hangup": "Отбой", "none": "—", "Timeout, s": "Ожидание ввода, с",
    "Repeats": "Повторы", "Extension digits": "Цифр во внутреннем номере",
    "No input / invalid": "Нет ввода / неверный ввод", "Prompt": "Запись",
    "Working hours": "Рабочее время", "Holidays and exceptions": "Праздники и исключения",
    "Monday": "Понедельник", "Tuesday": "Вторник", "Wednesday": "Среда", "Thursday": "Четверг",
    "Friday": "Пятница", "Saturday": "Суббота", "Sunday": "Воскресенье",
    "Intervals like 09:00-13:00, 14:00-18:00; empty = closed":
        "Интервалы вида 09:00-13:00, 14:00-18:00; пусто — выходной",
    "One per line: 2026-01-01 closed New Year, or 2026-12-31 10:00-15:00 short day":
        "По одному в строке: 2026-01-01 closed Новый год или 2026-12-31 10:00-15:00 короткий день",
    "Time zone": "Часовой пояс", "Standard prompts": "Стандартные записи", "Uploaded": "Загруженные",
    "Upload": "Загрузить", "File": "Файл", "Kind": "Тип", "Duration": "Длительность", "Download": "Скачать",
    "From": "С", "To": "По", "Result": "Результат", "All": "Все", "Filter": "Показать", "Export CSV": "Экспорт CSV",
    "Time": "Время", "Caller": "Кто звонил", "Called": "Куда звонил", "Answered by": "Ответил", "Wait": "Ожидание",
    "Talk": "Разговор", "answered": "Отвечен", "missed": "Пропущен", "abandoned": "Брошен",
    "callback_requested": "Заказан обратный звонок", "callback_completed": "Обратный звонок выполнен",
    "callback_failed": "Обратный звонок не удался", "Total": "Всего", "Average wait, s": "Среднее ожидание, с",
    "Calls per hour": "Звонки по часам", "Calls per day": "Звонки по дням", "Wait time, s": "Время ожидания, с",
    "By employee": "По сотрудникам", "By department": "По отделам", "Answered": "Отвечено",
    "Missed": "Пропущено", "Abandoned": "Брошено", "Only your own calls are shown.": "Показаны только ваши звонки.",
    "Company statistics": "Статистика компании", "Your statistics": "Ваша статистика",
    "Heard": "Прослушано", "yes": "да", "no": "нет", "Position in line": "Место в очереди",
    "Next attempt": "Следующая попытка", "Who": "Кто", "What": "Что", "Details": "Подробности",
    "Create token": "Создать токен", "Token name": "Название токена",
    "Copy the token now: it is shown only once.": "Скопируйте токен сейчас: он показан один раз.",
    "Last used": "Последнее использование", "Created": "Создан", "Revoke": "Отозвать",
    "Forbidden": "Доступ запрещён", "Not found": "Не найдено",
    "You have no rights for this page or action.": "У вас нет прав на эту страницу или действие.",
    "Nothing here yet.": "Пока пусто.", "Saved.": "Сохранено.", "Deleted.": "Удалено.",
    "Too many requests": "Слишком много запросов", "Enabled": "Включён",
    "Reset password and send a letter": "Сбросить пароль и отправить письмо",
    "New password": "Новый пароль", "Company": "Компания", "Domain": "Домен", "Language": "Язык",
    "Change password": "Сменить пароль", "Leave empty to keep the current password":
        "Оставьте пустым, чтобы не менять пароль", "Unheard": "Новое", "Audio": "Запись",
    "Are you sure?": "Вы уверены?", "Employee statistics": "Статистика сотрудника",
    "Wrong request": "Неверный запрос",
    "The page expired, please try again.": "Страница устарела, попробуйте ещё раз.",
    "Answered vs missed vs abandoned": "Отвечено / пропущено / брошено", "Period": "Период",
    "Menu options": "Пункты меню", "Calls": "Звонки",
}

# English service message → Russian (regex on the whole message; groups are carried over)
_MESSAGES: list[tuple[re.Pattern, str]] = [(re.compile(p), r) for p, r in [
    (r"wrong login or password", "Неверный логин или пароль"),
    (r"sign in as login@domain", "Входите как логин@домен"),
    (r"too many failed sign-in attempts, try again in (\d+) s",
     r"Слишком много неудачных попыток входа, повторите через \1 с"),
    (r"this action needs administrator rights", "Для этого действия нужны права администратора"),
    (r"this action is for the operator only", "Это действие доступно только оператору"),
    (r"you can edit only your own profile", "Вы можете менять только свой профиль"),
    (r"changing (\w+) needs administrator rights", r"Изменение поля «\1» требует прав администратора"),
    (r"you can see only your own statistics", "Вам доступна только своя статистика"),
    (r"tariff limit reached: (\d+) of (\d+) users",
     r"Достигнут лимит тарифа: \1 из \2 пользователей. Чтобы добавить сотрудника, смените тариф"),
    (r"extension (\S+) is already used by an employee", r"Внутренний номер \1 уже занят сотрудником"),
    (r"extension (\S+) is already used by a department", r"Внутренний номер \1 уже занят отделом"),
    (r"extension (\S+) is already used by a feature code", r"Внутренний номер \1 занят служебным кодом"),
    (r"extension is already in use in this company", "Этот внутренний номер уже используется"),
    (r"login is already in use in this company", "Этот логин уже используется"),
    (r"extension must not start with 0", "Внутренний номер не может начинаться с 0"),
    (r"extension (\S+) is reserved for emergency and service numbers",
     r"Номер \1 нельзя использовать: это номер экстренной или справочной службы "
     r"(запрещены 112, 101, 102, 103, 04, 104, 100, 115, 121, 123, 109, 125, 149, 141)"),
    (r"extension must contain digits only", "Внутренний номер должен состоять только из цифр"),
    (r"extension must be (\d+) to (\d+) digits long", r"Внутренний номер должен содержать от \1 до \2 цифр"),
    (r"extension (\S+) is a feature code \((.*)\)", r"Номер \1 занят служебным кодом (\2)"),
    (r"extension is required", "Укажите внутренний номер"),
    (r"login is required", "Укажите логин"),
    (r"login must start with a Latin letter \(a-z\)", "Логин должен начинаться с латинской буквы (a-z)"),
    (r"login may contain only .*", "Логин может содержать только латинские буквы a-z, цифры 0-9, «.», «_» и «-»"),
    (r"login must be at least (\d+) characters long", r"Логин не короче \1 символов"),
    (r"login must be at most (\d+) characters long", r"Логин не длиннее \1 символов"),
    (r"not a valid phone number: (.*)", r"Неверный номер телефона: \1"),
    (r"phone number is required", "Укажите номер телефона"),
    (r"not a valid e-mail address: (.*)", r"Неверный адрес e-mail: \1"),
    (r"name is required", "Укажите имя"),
    (r"name must be at most (\d+) characters long", r"Имя не длиннее \1 символов"),
    (r"password must be at least (\d+) characters long", r"Пароль не короче \1 символов"),
    (r"password must contain at least 3 of: .*",
     "Пароль должен содержать минимум 3 вида символов: строчные, заглавные буквы, цифры, знаки"),
    (r"password may contain only .*", "Пароль может содержать только латинские буквы, цифры и знаки ASCII"),
    (r"forwarding '(\w+)' requires a mobile phone number", "Для переадресации укажите мобильный телефон"),
    (r"(\w+) must be a whole number of seconds from (\d+) to (\d+)", r"\1: целое число секунд от \2 до \3"),
    (r"forwarding on no answer needs an external number", "Для перевода при неответе укажите внешний номер"),
    (r"transfer on no answer needs an employee", "Для перевода при неответе выберите сотрудника"),
    (r"transfer on no answer needs a department", "Для перевода при неответе выберите отдел"),
    (r"a department cannot transfer to itself", "Отдел не может переводить звонки сам на себя"),
    (r"a department with this name already exists", "Отдел с таким названием уже есть"),
    (r"employee (\S+) is listed twice", r"Сотрудник \1 указан дважды"),
    (r"destination (\w+) is required", r"Выберите направление: \1"),
    (r"out-of-hours forwarding needs an external number", "Для переадресации в нерабочее время укажите номер"),
    (r"out-of-hours destination is required", "Выберите направление для нерабочего времени"),
    (r"the file is not audio that can be read.*", "Файл не является аудиозаписью (загрузите WAV, MP3, OGG или FLAC)"),
    (r"unsupported file type; upload one of: (.*)", r"Неподдерживаемый тип файла; допустимы: \1"),
    (r"the file is empty", "Файл пустой"),
    (r"a prompt with this name already exists", "Запись с таким названием уже есть"),
    (r"time (.*) must be HH:MM", r"Время \1 должно быть в формате ЧЧ:ММ"),
    (r"an interval must end after it starts", "Интервал должен заканчиваться позже, чем начинается"),
    (r"intervals of one day must not overlap", "Интервалы одного дня не должны пересекаться"),
    (r"exception day must be YYYY-MM-DD", "Дата исключения — в формате ГГГГ-ММ-ДД"),
    (r"you cannot delete your own account", "Нельзя удалить свою учётную запись"),
    (r"it is still used by a (\w+)", r"Объект используется (\1) — сначала измените его"),
    (r"(\w+) not found", "Не найдено"), (r"not found", "Не найдено"),
    (r"changing the login needs a new password.*",
     "Смена логина требует нового пароля (SIP-дайджест зависит от обоих)"),
    (r"the start date must not be after the end date", "Начальная дата не может быть позже конечной"),
    (r"(\w+) must be a date YYYY-MM-DD", r"\1: дата в формате ГГГГ-ММ-ДД"),
    (r"an IVR key must be one of 0-9, \* or #", "Клавиша меню — 0-9, * или #"),
    (r"key (.) is used twice", r"Клавиша \1 использована дважды"),
    (r"key (.): choose an? (\w+)", r"Клавиша \1: выберите цель"),
    (r"fallback (\w+) is required", r"Выберите цель при отсутствии ввода"),
    (r"only a pending callback can be cancelled", "Отменить можно только ожидающий обратный звонок"),
]]


def translate_message(message: str, lang: str) -> str:
    if lang != "ru":
        return message
    for pat, repl in _MESSAGES:
        m = pat.fullmatch(message)
        if m:
            return m.expand(repl)
    return message


def gettext(text: str, lang: str) -> str:
    if lang == "ru":
        return RU.get(text, text)
    return text
