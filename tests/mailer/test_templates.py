from fsd import mailtemplates


def test_voicemail_letter_renders_in_both_languages():
    ctx = dict(name="Иван", tenant_name="Рога и копыта", caller="+79161234567", box="Отдел продаж",
               when="2026-11-28 10:00", duration="0:42", cabinet_url="http://cab.test/voicemail")
    subject, body = mailtemplates.render("voicemail", "ru", **ctx)
    assert "+79161234567" in subject and "Отдел продаж" in body and "0:42" in body
    subject, body = mailtemplates.render("voicemail", "en", **ctx)
    assert subject.startswith("New voicemail") and "http://cab.test/voicemail" in body
    subject, _ = mailtemplates.render("voicemail", "ru", **{**ctx, "caller": ""})
    assert "неизвестного номера" in subject
