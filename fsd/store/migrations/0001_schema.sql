-- fsd schema, version 1: the whole data model (SPEC §1-5).
-- Rules are enforced here as well as in fsd.domain: a bug in code must not be able to store bad data.

CREATE TABLE tenants (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    domain          text NOT NULL UNIQUE
                    CHECK (domain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$'
                           AND length(domain) <= 253),
    timezone        text NOT NULL DEFAULT 'Europe/Moscow',
    max_users       integer NOT NULL CHECK (max_users BETWEEN 1 AND 100000),
    language        text NOT NULL DEFAULT 'ru' CHECK (language IN ('ru', 'en')),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Weekly working hours: weekday 0 = Monday .. 6 = Sunday; minutes from midnight, end 1440 = 24:00.
CREATE TABLE schedule_intervals (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    weekday         smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_minute    smallint NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute      smallint NOT NULL CHECK (end_minute BETWEEN 1 AND 1440),
    CHECK (start_minute < end_minute),
    UNIQUE (tenant_id, weekday, start_minute)
);
CREATE INDEX schedule_intervals_tenant ON schedule_intervals (tenant_id);

-- Dated exceptions (holidays, short days): closed all day, or own intervals replacing the weekly ones.
CREATE TABLE schedule_exceptions (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day             date NOT NULL,
    closed          boolean NOT NULL DEFAULT true,
    start_minute    smallint CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute      smallint CHECK (end_minute BETWEEN 1 AND 1440),
    note            text NOT NULL DEFAULT '',
    CHECK (closed OR (start_minute IS NOT NULL AND end_minute IS NOT NULL AND start_minute < end_minute)),
    CHECK (NOT closed OR (start_minute IS NULL AND end_minute IS NULL))
);
CREATE UNIQUE INDEX schedule_exceptions_day ON schedule_exceptions (tenant_id, day, coalesce(start_minute, -1));

-- Uploaded or default audio. tenant_id NULL = a system default prompt.
CREATE TABLE prompts (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint REFERENCES tenants(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    kind            text NOT NULL DEFAULT 'custom'
                    CHECK (kind IN ('greeting', 'voicemail', 'ivr', 'offhours', 'impatient', 'custom')),
    language        text NOT NULL DEFAULT 'ru',
    filename        text NOT NULL,
    sample_rate     integer NOT NULL CHECK (sample_rate > 0),
    duration_ms     integer NOT NULL CHECK (duration_ms >= 0),
    size_bytes      integer NOT NULL CHECK (size_bytes >= 0),
    sha256          text NOT NULL,
    audio           bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- Extension registry: one row per short number in use in a tenant (employees, departments, feature
-- codes). Its primary key is what makes extensions unique across all kinds, even under races.
CREATE TABLE extensions (
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    extension       text NOT NULL,
    owner_kind      text NOT NULL CHECK (owner_kind IN ('employee', 'department', 'feature')),
    owner_id        bigint,
    PRIMARY KEY (tenant_id, extension)
);

CREATE TABLE employees (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    login           text NOT NULL CHECK (login ~ '^[a-z][a-z0-9._-]{1,31}$'),
    password_hash   text NOT NULL,
    sip_a1_hash     text NOT NULL CHECK (sip_a1_hash ~ '^[0-9a-f]{32}$'),
    position        text NOT NULL DEFAULT '' CHECK (length(position) <= 200),
    role            text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user', 'limited')),
    extension       text NOT NULL
                    CHECK (extension ~ '^[1-9][0-9]{1,7}$'
                           AND extension NOT IN ('112','101','102','103','04','104','100','115',
                                                 '121','123','109','125','149','141')),
    email           text CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    mobile          text CHECK (mobile IS NULL OR mobile ~ '^\+[1-9][0-9]{6,14}$'),
    forward_mode    text NOT NULL DEFAULT 'off' CHECK (forward_mode IN ('off', 'instant', 'delayed')),
    forward_delay   integer NOT NULL DEFAULT 15 CHECK (forward_delay BETWEEN 1 AND 300),
    enabled         boolean NOT NULL DEFAULT true,
    last_call_ended_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, login),
    UNIQUE (tenant_id, extension),
    CHECK (forward_mode = 'off' OR mobile IS NOT NULL)
);
CREATE INDEX employees_tenant ON employees (tenant_id);

CREATE TABLE departments (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    extension       text CHECK (extension IS NULL OR (extension ~ '^[1-9][0-9]{1,7}$'
                           AND extension NOT IN ('112','101','102','103','04','104','100','115',
                                                 '121','123','109','125','149','141'))),
    strategy        text NOT NULL DEFAULT 'simultaneous'
                    CHECK (strategy IN ('simultaneous', 'evenly', 'in_order', 'cascade')),
    step_delay      integer NOT NULL DEFAULT 15 CHECK (step_delay BETWEEN 1 AND 600),
    ring_timeout    integer NOT NULL DEFAULT 60 CHECK (ring_timeout BETWEEN 5 AND 3600),
    no_answer_action text NOT NULL DEFAULT 'voicemail'
                    CHECK (no_answer_action IN ('voicemail', 'forward_external', 'transfer_employee',
                                                'transfer_department')),
    no_answer_number text CHECK (no_answer_number IS NULL OR no_answer_number ~ '^\+[1-9][0-9]{6,14}$'),
    no_answer_employee_id bigint REFERENCES employees(id) ON DELETE RESTRICT,
    no_answer_department_id bigint REFERENCES departments(id) ON DELETE RESTRICT,
    voicemail_prompt_id bigint REFERENCES prompts(id) ON DELETE SET NULL,
    impatient_enabled boolean NOT NULL DEFAULT false,
    impatient_threshold integer NOT NULL DEFAULT 20 CHECK (impatient_threshold BETWEEN 5 AND 600),
    impatient_offer_callback boolean NOT NULL DEFAULT true,
    impatient_offer_voicemail boolean NOT NULL DEFAULT true,
    impatient_prompt_id bigint REFERENCES prompts(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, extension),
    CHECK (no_answer_action <> 'forward_external' OR no_answer_number IS NOT NULL),
    CHECK (no_answer_action <> 'transfer_employee' OR no_answer_employee_id IS NOT NULL),
    CHECK (no_answer_action <> 'transfer_department' OR no_answer_department_id IS NOT NULL),
    CHECK (no_answer_department_id IS NULL OR no_answer_department_id <> id)
);
CREATE INDEX departments_tenant ON departments (tenant_id);

CREATE TABLE department_members (
    department_id   bigint NOT NULL REFERENCES departments(id) ON DELETE CASCADE,
    employee_id     bigint NOT NULL REFERENCES employees(id) ON DELETE CASCADE,
    position        integer NOT NULL CHECK (position >= 0),
    PRIMARY KEY (department_id, employee_id),
    UNIQUE (department_id, position) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX department_members_employee ON department_members (employee_id);

CREATE TABLE ivr_menus (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    prompt_id       bigint REFERENCES prompts(id) ON DELETE SET NULL,
    invalid_prompt_id bigint REFERENCES prompts(id) ON DELETE SET NULL,
    timeout_s       integer NOT NULL DEFAULT 5 CHECK (timeout_s BETWEEN 1 AND 60),
    max_repeats     integer NOT NULL DEFAULT 3 CHECK (max_repeats BETWEEN 1 AND 10),
    ext_digits      integer NOT NULL DEFAULT 3 CHECK (ext_digits BETWEEN 2 AND 8),
    fallback_kind   text NOT NULL DEFAULT 'voicemail'
                    CHECK (fallback_kind IN ('department', 'employee', 'voicemail', 'menu', 'hangup')),
    fallback_department_id bigint REFERENCES departments(id) ON DELETE SET NULL,
    fallback_employee_id bigint REFERENCES employees(id) ON DELETE SET NULL,
    fallback_menu_id bigint REFERENCES ivr_menus(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE ivr_items (
    menu_id         bigint NOT NULL REFERENCES ivr_menus(id) ON DELETE CASCADE,
    digit           text NOT NULL CHECK (digit ~ '^[0-9*#]$'),
    action          text NOT NULL
                    CHECK (action IN ('department', 'employee', 'dial_extension', 'voicemail', 'menu', 'hangup')),
    department_id   bigint REFERENCES departments(id) ON DELETE CASCADE,
    employee_id     bigint REFERENCES employees(id) ON DELETE CASCADE,
    submenu_id      bigint REFERENCES ivr_menus(id) ON DELETE CASCADE,
    PRIMARY KEY (menu_id, digit),
    CHECK (action <> 'department' OR department_id IS NOT NULL),
    CHECK (action <> 'employee' OR employee_id IS NOT NULL),
    CHECK (action <> 'menu' OR submenu_id IS NOT NULL)
);

-- Company numbers (DIDs). A DID belongs to exactly one tenant in the whole installation.
CREATE TABLE numbers (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    did             text NOT NULL UNIQUE CHECK (did ~ '^\+[1-9][0-9]{6,14}$'),
    name            text NOT NULL DEFAULT '',
    is_main         boolean NOT NULL DEFAULT false,
    mode            text NOT NULL DEFAULT 'always' CHECK (mode IN ('schedule', 'always')),
    dest_kind       text NOT NULL DEFAULT 'voicemail'
                    CHECK (dest_kind IN ('department', 'employee', 'ivr', 'voicemail')),
    dest_department_id bigint REFERENCES departments(id) ON DELETE RESTRICT,
    dest_employee_id bigint REFERENCES employees(id) ON DELETE RESTRICT,
    dest_ivr_id     bigint REFERENCES ivr_menus(id) ON DELETE RESTRICT,
    offhours_action text NOT NULL DEFAULT 'voicemail'
                    CHECK (offhours_action IN ('voicemail', 'message_hangup', 'forward', 'destination')),
    offhours_number text CHECK (offhours_number IS NULL OR offhours_number ~ '^\+[1-9][0-9]{6,14}$'),
    offhours_dest_kind text CHECK (offhours_dest_kind IN ('department', 'employee', 'ivr', 'voicemail')),
    offhours_department_id bigint REFERENCES departments(id) ON DELETE RESTRICT,
    offhours_employee_id bigint REFERENCES employees(id) ON DELETE RESTRICT,
    offhours_ivr_id bigint REFERENCES ivr_menus(id) ON DELETE RESTRICT,
    offhours_prompt_id bigint REFERENCES prompts(id) ON DELETE SET NULL,
    greeting_prompt_id bigint REFERENCES prompts(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (dest_kind <> 'department' OR dest_department_id IS NOT NULL),
    CHECK (dest_kind <> 'employee' OR dest_employee_id IS NOT NULL),
    CHECK (dest_kind <> 'ivr' OR dest_ivr_id IS NOT NULL),
    CHECK (offhours_action <> 'forward' OR offhours_number IS NOT NULL),
    CHECK (offhours_action <> 'destination' OR offhours_dest_kind IS NOT NULL),
    CHECK (offhours_dest_kind IS DISTINCT FROM 'department' OR offhours_department_id IS NOT NULL),
    CHECK (offhours_dest_kind IS DISTINCT FROM 'employee' OR offhours_employee_id IS NOT NULL),
    CHECK (offhours_dest_kind IS DISTINCT FROM 'ivr' OR offhours_ivr_id IS NOT NULL)
);
CREATE INDEX numbers_tenant ON numbers (tenant_id);
CREATE UNIQUE INDEX numbers_one_main ON numbers (tenant_id) WHERE is_main;

-- Trunk gateways for the external SIP profile (served to sofia with purpose=gateways).
CREATE TABLE gateways (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name ~ '^[a-zA-Z0-9_.-]{1,64}$'),
    proxy           text NOT NULL,
    username        text NOT NULL DEFAULT '',
    password        text NOT NULL DEFAULT '',
    register        boolean NOT NULL DEFAULT false,
    caller_id_in_from boolean NOT NULL DEFAULT true,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Call history: exactly one row per call (call_uuid unique, so spooled retries are idempotent).
CREATE TABLE calls (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    call_uuid       text NOT NULL UNIQUE,
    direction       text NOT NULL CHECK (direction IN ('inbound', 'internal', 'outbound', 'callback')),
    caller          text NOT NULL DEFAULT '',
    caller_name     text NOT NULL DEFAULT '',
    called          text NOT NULL DEFAULT '',
    number_id       bigint REFERENCES numbers(id) ON DELETE SET NULL,
    route           text NOT NULL DEFAULT '',
    department_id   bigint REFERENCES departments(id) ON DELETE SET NULL,
    employee_id     bigint REFERENCES employees(id) ON DELETE SET NULL,
    answered_by     bigint REFERENCES employees(id) ON DELETE SET NULL,
    started_at      timestamptz NOT NULL,
    answered_at     timestamptz,
    ended_at        timestamptz NOT NULL,
    wait_s          numeric(10, 3) NOT NULL DEFAULT 0 CHECK (wait_s >= 0),
    talk_s          numeric(10, 3) NOT NULL DEFAULT 0 CHECK (talk_s >= 0),
    result          text NOT NULL
                    CHECK (result IN ('answered', 'missed', 'abandoned', 'voicemail', 'callback_requested',
                                      'callback_completed', 'callback_failed')),
    hangup_cause    text NOT NULL DEFAULT '',
    node            text NOT NULL DEFAULT '',
    CHECK (ended_at >= started_at)
);
CREATE INDEX calls_tenant_started ON calls (tenant_id, started_at DESC);
CREATE INDEX calls_answered_by ON calls (answered_by, started_at DESC);
CREATE INDEX calls_department ON calls (department_id, started_at DESC);

CREATE TABLE voicemails (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    call_uuid       text NOT NULL,
    employee_id     bigint REFERENCES employees(id) ON DELETE SET NULL,
    department_id   bigint REFERENCES departments(id) ON DELETE SET NULL,
    caller          text NOT NULL DEFAULT '',
    duration_s      numeric(10, 3) NOT NULL DEFAULT 0,
    path            text NOT NULL,
    size_bytes      integer NOT NULL DEFAULT 0,
    audio           bytea,
    heard           boolean NOT NULL DEFAULT false,
    emailed_at      timestamptz,
    email_error     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_uuid)
);
CREATE INDEX voicemails_tenant ON voicemails (tenant_id, created_at DESC);

CREATE TABLE callbacks (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    department_id   bigint REFERENCES departments(id) ON DELETE SET NULL,
    number_id       bigint REFERENCES numbers(id) ON DELETE SET NULL,
    caller          text NOT NULL,
    position        integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    origin_call_uuid text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
    interval_s      integer NOT NULL DEFAULT 300 CHECK (interval_s BETWEEN 10 AND 86400),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    employee_id     bigint REFERENCES employees(id) ON DELETE SET NULL,
    claimed_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE status = 'pending';
CREATE INDEX callbacks_tenant ON callbacks (tenant_id, created_at DESC);

-- Atomic member reservation across fsd processes: a member can be offered one call at a time.
CREATE TABLE reservations (
    employee_id     bigint PRIMARY KEY REFERENCES employees(id) ON DELETE CASCADE,
    call_uuid       text NOT NULL,
    node            text NOT NULL,
    reserved_at     timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX reservations_node ON reservations (node);

-- Phone registrations as seen on sofia::register / unregister (shared by all fsd processes).
CREATE TABLE registrations (
    employee_id     bigint NOT NULL REFERENCES employees(id) ON DELETE CASCADE,
    contact         text NOT NULL,
    node            text NOT NULL,
    user_agent      text NOT NULL DEFAULT '',
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (employee_id, contact)
);

CREATE TABLE api_tokens (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    employee_id     bigint NOT NULL REFERENCES employees(id) ON DELETE CASCADE,
    name            text NOT NULL DEFAULT '',
    token_hash      text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz
);

-- Outgoing e-mail (credentials letters, voicemail): written in the same transaction as the change,
-- sent and retried by a worker, so a failed send is visible and never silently dropped.
CREATE TABLE email_outbox (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint REFERENCES tenants(id) ON DELETE CASCADE,
    kind            text NOT NULL,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    attachment_name text,
    attachment      bytea,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'pending';

CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint REFERENCES tenants(id) ON DELETE CASCADE,
    actor           text NOT NULL,
    action          text NOT NULL,
    entity          text NOT NULL,
    entity_id       text NOT NULL DEFAULT '',
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, at DESC);

-- Keep the extension registry in step with employees and departments (one namespace per tenant).
CREATE FUNCTION fsd_sync_extension() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text := CASE TG_TABLE_NAME WHEN 'employees' THEN 'employee' ELSE 'department' END;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.extension IS NOT NULL THEN
        DELETE FROM extensions
         WHERE tenant_id = OLD.tenant_id AND extension = OLD.extension
           AND owner_kind = kind AND owner_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.extension IS NOT NULL THEN
        INSERT INTO extensions (tenant_id, extension, owner_kind, owner_id)
        VALUES (NEW.tenant_id, NEW.extension, kind, NEW.id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER employees_extension AFTER INSERT OR UPDATE OF extension OR DELETE ON employees
    FOR EACH ROW EXECUTE FUNCTION fsd_sync_extension();
CREATE TRIGGER departments_extension AFTER INSERT OR UPDATE OF extension OR DELETE ON departments
    FOR EACH ROW EXECUTE FUNCTION fsd_sync_extension();

-- Tariff cap in the schema too: a tenant never holds more than max_users employees.
CREATE FUNCTION fsd_check_tariff() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cap integer;
    n integer;
BEGIN
    SELECT max_users INTO cap FROM tenants WHERE id = NEW.tenant_id FOR UPDATE;
    SELECT count(*) INTO n FROM employees WHERE tenant_id = NEW.tenant_id;
    IF n > cap THEN
        RAISE EXCEPTION 'tariff limit reached: % of % users', cap, cap
            USING ERRCODE = 'check_violation', CONSTRAINT = 'employees_tariff';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER employees_tariff AFTER INSERT ON employees
    FOR EACH ROW EXECUTE FUNCTION fsd_check_tariff();
