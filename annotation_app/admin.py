"""The admin page (role admin only): campaigns and accounts from the browser.

Every POST carries the CSRF token (the app-wide CSRFProtect refuses it otherwise, 400).
Everything here calls the same functions as ``jod campaign ...`` and ``jod user ...``
(``campaigns.py``, ``accounts.py``); this module only turns forms into those calls and
their errors into messages. Campaign images are taken from a folder on the server, under
``IMPORT_ROOT``, never uploaded through the browser.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from annotation_app import accounts
from annotation_app.auth import roles_required
from annotation_app.campaigns import (
    TRANSITIONS,
    change_status,
    create_from_text,
    delete_campaign,
    list_campaigns,
)
from annotation_app.db import get_db
from annotation_app.models import ROLES, Campaign, User
from annotation_app.spec import IMAGE_SUFFIXES, parse_spec
from scaling.errors import InputError

bp = Blueprint("admin", __name__, url_prefix="/admin")
MAX_FOLDERS = 500


class CampaignForm(FlaskForm):
    spec = TextAreaField("Spec (YAML)", validators=[DataRequired(), Length(max=200_000)])
    folder = SelectField("Image folder on the server", validators=[DataRequired()])


class UserForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=80)])
    role = SelectField("Role", choices=list(ROLES), default="observer")
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class PasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=200)])


class AssignForm(FlaskForm):
    campaign = SelectField("Campaign", validators=[DataRequired()])


def import_folders() -> list[str]:
    """Folders under IMPORT_ROOT (relative, '.' for the root itself) holding images or
    scene folders, sorted; empty when no IMPORT_ROOT is configured."""
    root = current_app.config.get("IMPORT_ROOT")
    if not root:
        return []
    root_path = Path(root).resolve()
    found = []
    for folder in sorted([root_path, *(p for p in root_path.rglob("*") if p.is_dir())]):
        if len(found) >= MAX_FOLDERS:
            break
        if any(p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
            found.append(str(folder.relative_to(root_path)))
    return found


def _forms() -> dict:
    db = get_db()
    campaign_form = CampaignForm()
    campaign_form.folder.choices = import_folders()
    assign_form = AssignForm()
    assign_form.campaign.choices = [
        (c.name, c.name)
        for c in db.query(Campaign).order_by(Campaign.name)
        if c.status != "archived"
    ]
    return {
        "campaign_form": campaign_form,
        "user_form": UserForm(),
        "password_form": PasswordForm(),
        "assign_form": assign_form,
        "action_form": FlaskForm(),
    }


def _page(**extra):
    db = get_db()
    return render_template(
        "admin/index.html",
        campaigns=list_campaigns(db),
        users=accounts.list_users(db),
        transitions=TRANSITIONS,
        import_root=current_app.config.get("IMPORT_ROOT"),
        **_forms(),
        **extra,
    )


@bp.get("/")
@roles_required("admin")
def index():
    """Campaigns and accounts."""
    return _page()


def _done(message: str):
    flash(message)
    return redirect(url_for("admin.index"))


def _refused(err: InputError):
    get_db().rollback()
    flash(f"refused: {err}")
    return redirect(url_for("admin.index"))


@bp.post("/campaigns")
@roles_required("admin")
def create():
    """Create a campaign from the pasted spec and a server folder under IMPORT_ROOT."""
    forms = _forms()
    form = forms["campaign_form"]
    if not form.validate_on_submit():
        return _refused(InputError(_form_errors(form)))
    root = Path(current_app.config["IMPORT_ROOT"]).resolve()
    folder = (root / form.folder.data).resolve()
    try:
        spec = parse_spec(form.spec.data, source="pasted spec")
        if not (folder / spec.image_root).resolve().is_relative_to(root):
            raise InputError("image_root leads outside the import folder", field="image_root")
        result = create_from_text(
            get_db(),
            form.spec.data,
            folder,
            Path(current_app.config["IMAGE_STORE"]),
            source="pasted spec",
        )
    except InputError as err:
        return _refused(err)
    campaign = result.campaign
    if not result.created:
        return _done(f"campaign {campaign.name!r} already exists with this spec; unchanged")
    converted = sum(1 for im in campaign.images if im.conversion)
    flash(
        f"campaign {campaign.name!r} created: {len(campaign.images)} images"
        + (f", {converted} converted to PNG (lossless)" if converted else "")
        + "; assign observers below"
    )
    for warning in result.warnings:
        flash(f"warning: {warning}")
    return redirect(url_for("admin.index"))


def _form_errors(form: FlaskForm) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


@bp.post("/campaigns/<int:campaign_id>/<action>")
@roles_required("admin")
def campaign_action(campaign_id: int, action: str):
    """pause, resume, close, archive or delete."""
    campaign = get_db().get(Campaign, campaign_id) or abort(404)
    name = campaign.name
    try:
        if action == "delete":
            delete_campaign(get_db(), name)
            return _done(f"campaign {name!r} deleted")
        campaign = change_status(get_db(), name, action)
    except InputError as err:
        return _refused(err)
    return _done(f"campaign {name!r} is now {campaign.status}")


@bp.post("/users")
@roles_required("admin")
def add():
    """Add an account."""
    form = UserForm()
    if not form.validate_on_submit():
        return _refused(InputError(_form_errors(form)))
    try:
        accounts.add_user(get_db(), form.username.data, form.password.data, form.role.data)
    except InputError as err:
        return _refused(err)
    return _done(f"user {form.username.data!r} ({form.role.data}) created")


def _user(user_id: int) -> User:
    return get_db().get(User, user_id) or abort(404)


@bp.post("/users/<int:user_id>/disable")
@roles_required("admin")
def disable(user_id: int):
    """Disable an account (its login sessions end at once), or enable it again."""
    user = _user(user_id)
    disabling = user.disabled_at is None
    accounts.set_disabled(get_db(), user.username, disabling)
    return _done(f"user {user.username!r} {'disabled' if disabling else 'enabled'}")


@bp.post("/users/<int:user_id>/password")
@roles_required("admin")
def password(user_id: int):
    """Reset a password (the user's login sessions end)."""
    form = PasswordForm()
    user = _user(user_id)
    if not form.validate_on_submit():
        return _refused(InputError(_form_errors(form)))
    try:
        accounts.set_password(get_db(), user.username, form.password.data)
    except InputError as err:
        return _refused(err)
    return _done(f"password of {user.username!r} reset; its login sessions ended")


@bp.post("/users/<int:user_id>/assign")
@roles_required("admin")
def assign(user_id: int):
    """Assign the user to a campaign."""
    forms = _forms()
    form = forms["assign_form"]
    user = _user(user_id)
    if not form.validate_on_submit():
        return _refused(InputError(_form_errors(form)))
    try:
        accounts.assign(get_db(), user.username, form.campaign.data)
    except InputError as err:
        return _refused(err)
    return _done(f"user {user.username!r} assigned to {form.campaign.data!r}")


@bp.post("/users/<int:user_id>/unassign/<int:campaign_id>")
@roles_required("admin")
def unassign(user_id: int, campaign_id: int):
    """Take an assignment away."""
    user = _user(user_id)
    campaign = get_db().get(Campaign, campaign_id) or abort(404)
    accounts.assign(get_db(), user.username, campaign.name, assigned=False)
    return _done(f"user {user.username!r} removed from {campaign.name!r}")
