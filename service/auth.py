"""Logging in, token revocation and the login throttle."""

from __future__ import annotations

from datetime import datetime, timedelta

from mongoengine.errors import NotUniqueError

from documents.accounts import LoginFailure, RevokedToken, School, User
from documents.base import utcnow
from documents.webhooks import WebhookSubscription
from service import audit
from service.context import Actor
from service.errors import TooManyRequests, Unauthorized

BAD_CREDENTIALS = "Email or password is wrong."
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
BLOCK_FOR = timedelta(minutes=1)


class Authenticator:
    def login(self, email: str, password: str, address: str | None = None) -> User:
        """The user for these credentials; the same 401 whether the email exists or not.
        `address` is the client's: failures are throttled per email and address."""
        from service.passwords import verify_password

        email = email.strip().lower()
        self._refuse_if_throttled(email, address)
        user = User.objects(email=email, is_active=True).first()
        # An unknown email verifies a dummy hash: the answer takes as long as a wrong password.
        if not verify_password(password, user.password_hash if user else None):
            self._count_failure(email, address, user)
            raise Unauthorized(BAD_CREDENTIALS, code="bad_credentials")
        LoginFailure.objects(email=email, address=address).delete()
        self._upgrade_hash(user, password)
        return user

    def _upgrade_hash(self, user: User, password: str) -> None:
        """Replace an older hash (scrypt) by argon2id now that the password is known; only if
        no password change landed meanwhile (the filter names the hash just verified)."""
        from service.passwords import hash_password, needs_rehash

        if needs_rehash(user.password_hash):
            User.objects(id=user.id, password_hash=user.password_hash).update_one(
                set__password_hash=hash_password(password))

    def user(self, user_id) -> User:
        user = User.objects(id=user_id, is_active=True).first()
        if user is None:
            raise Unauthorized("This account no longer exists.", code="unknown_user")
        return user

    def revoke(self, actor: Actor, jti: str, expires_at: datetime) -> None:
        try:
            RevokedToken(jti=jti, expires_at=expires_at).save()
        except NotUniqueError:
            return
        audit.record(actor, actor.school_id, "logout", "user", actor.user_id)

    def is_revoked(self, jti: str) -> bool:
        # The TTL monitor removes expired rows only once a minute: count those in force.
        return RevokedToken.objects(jti=jti, expires_at__gt=utcnow()).only("id").first() \
            is not None

    def school_and_revocation(self, school_id, jti: str, webhooks: bool = False
                              ) -> tuple[School | None, bool, tuple | None]:
        """The school (its id, company and modules: what the tenancy check needs) and whether
        the token `jti` is revoked, in one round trip: a school route's token check and school
        lookup together. With `webhooks` (a writing request), the school's enabled webhook
        subscriptions too, as (id, events) (`SchoolContext.webhooks`), else None. An unknown
        school costs the plain revocation read besides."""
        pipeline = [
            {"$match": {"_id": school_id}},
            {"$project": {"company_id": 1, "modules": 1}},
            {"$addFields": {"_jti": {"$literal": jti}}},
            # The localField form: mongomock lacks $lookup with a pipeline.
            {"$lookup": {"from": RevokedToken._get_collection_name(), "localField": "_jti",
                         "foreignField": "jti", "as": "revoked"}},
        ]
        fields = {"company_id": 1, "modules": 1, "revoked.expires_at": 1}
        if webhooks:
            pipeline.append({"$lookup": {"from": WebhookSubscription._get_collection_name(),
                                         "localField": "_id", "foreignField": "school_id",
                                         "as": "webhooks"}})
            fields.update({"webhooks._id": 1, "webhooks.enabled": 1, "webhooks.events": 1})
        found = list(School._get_collection().aggregate([*pipeline, {"$project": fields}]))
        if not found:
            return None, self.is_revoked(jti), None
        document = found[0]
        now = utcnow()
        # As in is_revoked: an expired row the TTL monitor has not yet removed is not in force.
        revoked = any(row["expires_at"] > now for row in document.pop("revoked"))
        hooks = None
        if webhooks:
            hooks = tuple((hook["_id"], frozenset(hook.get("events") or ()))
                          for hook in document.pop("webhooks", [])
                          if hook.get("enabled", True))
        return School._from_son(document), revoked, hooks

    def _refuse_if_throttled(self, email: str, address: str | None) -> None:
        """MAX_FAILURES failures within FAILURE_WINDOW from one address block the account for
        that address until BLOCK_FOR has passed since the latest one; each further failure
        blocks it again. Other addresses (the owner's) are not blocked by them."""
        now = utcnow()
        recent = list(LoginFailure.objects(email=email, address=address,
                                           created_at__gt=now - FAILURE_WINDOW)
                      .order_by("-created_at").only("created_at").limit(MAX_FAILURES))
        if len(recent) < MAX_FAILURES:
            return
        unblocked_at = recent[0].created_at + BLOCK_FOR
        if unblocked_at > now:
            wait = int((unblocked_at - now).total_seconds()) + 1
            raise TooManyRequests(
                f"Too many failed logins for this account from here; try again in {wait} "
                "seconds.", wait)

    def _count_failure(self, email: str, address: str | None, user: User | None) -> None:
        """Count the failure for the throttle; a failure on a real account also goes to its
        school's trail (an unknown email has no school to tell)."""
        LoginFailure(email=email, address=address).save()
        if user is not None:
            caller = Actor(user_id=None, role="anonymous", company_id=user.company_id)
            audit.record(caller, user.school_id, "login_failed", "user", user.id)
