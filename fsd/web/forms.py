"""WTForms (via Flask-WTF, which also carries the CSRF token) for the cabinet's main forms.

The forms check structure (required, lengths, choices); the domain rules live in the services, whose
errors are attached back to the matching field."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from fsd.domain.rules import FORWARD_MODES, ROLES


class LoginForm(FlaskForm):
    login = StringField("login@domain", validators=[DataRequired(), Length(max=300)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class EmployeeForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    login = StringField("Login", validators=[Optional(), Length(max=100)])
    password = StringField("Password", validators=[Optional(), Length(max=200)])
    position = StringField("Position", validators=[Optional(), Length(max=300)])
    role = SelectField("Rights", choices=list(ROLES), default="user")
    extension = StringField("Extension", validators=[Optional(), Length(max=20)])
    email = StringField("E-mail", validators=[Optional(), Length(max=300)])
    mobile = StringField("Mobile phone", validators=[Optional(), Length(max=100)])
    forward_mode = SelectField("Forwarding", choices=list(FORWARD_MODES), default="off")
    forward_delay = IntegerField("Forwarding delay, s", validators=[Optional(), NumberRange(min=-10**6, max=10**6)],
                                 default=15)
    enabled = BooleanField("Enabled", default=True)


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[Optional(), Length(max=100)])
