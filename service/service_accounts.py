"""Service accounts and their API keys: how integrations (an HR portal, a nightly job) call
the API without a person's password.

A key reads `rota_<8 hex>_<43 url-safe characters>`. Its first part, the prefix, is stored
and listed so people can tell keys apart; the whole key is shown once, when it is made, and
only its SHA-256 is stored. A fast hash is right here where passwords need argon2: the secret
is 256 random bits, beyond any guessing, so a slow hash would add nothing but its cost (tens
of milliseconds and 19 MiB on every request made with a key). Unkeyed, so rotating the JWT
secret leaves keys working.

An account acts as a school admin: of its school, or, company-wide (no school), of every school
of its company; it never creates schools, switches modules or manages service accounts (those
need a company admin). A `read_only` account may only read (GET and HEAD).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mongoengine.errors import NotUniqueError
from mongoengine.queryset.visitor import Q
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.base import utcnow
from documents.service_accounts import ApiKey, ApiKeyWindow, ServiceAccount
from service import audit
from service.context import Actor, SchoolContext
from service.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from service.ids import object_id
from service.pagination import Page, paginate

KEY_PREFIX = "rota_"
ACCOUNT_ROLES = ("school_admin", "read_only")
TOUCH_EVERY = timedelta(minutes=1)
RATE_WINDOW = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1)


def is_api_key(token: str) -> bool:
    """Keys and access tokens share the bearer header; a JWT never starts like a key."""
    return token.startswith(KEY_PREFIX)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its visible prefix."""
    prefix = KEY_PREFIX + secrets.token_hex(4)
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def naive_utc(moment: datetime | None) -> datetime | None:
    """As stored: naive UTC (a timestamp without a zone is taken as UTC)."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


class ServiceAccounts:
    """The service accounts of one school or, with `school_id` None, the company-wide ones.
    Managed by company admins only; accounts and keys of another scope are 404."""

    def __init__(self, actor: Actor, company_id, school_id=None):
        if actor.role != "company_admin":
            raise Forbidden("Only company admins manage service accounts.")
        self.actor = actor
        self.company_id = company_id
        self.school_id = school_id

    @classmethod
    def of_school(cls, ctx: SchoolContext) -> ServiceAccounts:
        return cls(ctx.actor, ctx.company_id, ctx.school_id)

    @classmethod
    def of_company(cls, actor: Actor) -> ServiceAccounts:
        return cls(actor, actor.company_id)

    def create(self, name: str, role: str) -> ServiceAccount:
        account = ServiceAccount(company_id=self.company_id, school_id=self.school_id,
                                 name=name, role=role, created_by=self.actor.user_id)
        try:
            account.save()
        except NotUniqueError:
            raise Conflict(f"A service account named {name!r} exists here already.",
                           code="duplicate", details={"name": name}) from None
        self._audit("create", "service_account", account.id, after={"name": name, "role": role})
        return account

    def list(self, page: int = 1, page_size: int = 50) -> Page:
        accounts = ServiceAccount.objects(company_id=self.company_id, school_id=self.school_id)
        return paginate(accounts.order_by("name"), page, page_size)

    def create_key(self, account_id, expires_at: datetime | None = None) -> dict:
        """A new key of the account, the only time its secret is seen. Earlier keys stay valid
        until revoked: rotate by making a new key, deploying it, then revoking the old one."""
        account = self._account(account_id)
        expires_at = naive_utc(expires_at)
        if expires_at is not None and expires_at <= utcnow():
            raise ValidationFailed("expires_at must be in the future.",
                                   {"expires_at": ["Must be in the future."]})
        key, prefix = new_key()
        api_key = ApiKey(account_id=account.id, account_name=account.name,
                         company_id=account.company_id, school_id=account.school_id,
                         role=account.role, prefix=prefix, key_hash=key_hash(key),
                         expires_at=expires_at).save()
        self._audit("create", "api_key", api_key.id, after={
            "service_account_id": account.id, "prefix": prefix, "expires_at": expires_at})
        return {"id": api_key.id, "key": key, "prefix": prefix, "expires_at": expires_at,
                "revoked_at": None, "last_used_at": None, "created_at": api_key.created_at}

    def list_keys(self, account_id, page: int = 1, page_size: int = 50) -> Page:
        account = self._account(account_id)
        keys = ApiKey.objects(account_id=account.id).order_by("-created_at", "-id")
        return paginate(keys, page, page_size)

    def revoke_key(self, account_id, key_id) -> None:
        """The key answers 401 from now on; revoking it again changes nothing."""
        account = self._account(account_id)
        key = ApiKey.objects(id=object_id(key_id, "API key"), account_id=account.id).first()
        if key is None:
            raise NotFound(f"No API key with id {key_id!r}.")
        if ApiKey.objects(id=key.id, revoked_at=None).update_one(set__revoked_at=utcnow()):
            self._audit("revoke", "api_key", key.id,
                        before={"service_account_id": account.id, "prefix": key.prefix})

    def _account(self, account_id) -> ServiceAccount:
        account = ServiceAccount.objects(id=object_id(account_id, "service account"),
                                         company_id=self.company_id,
                                         school_id=self.school_id).first()
        if account is None:
            raise NotFound(f"No service account with id {account_id!r}.")
        return account

    def _audit(self, action: str, entity_type: str, entity_id, before=None, after=None):
        # Company-wide accounts have no school: their events are company-level (school None).
        audit.record(self.actor, self.school_id, action, entity_type, entity_id, before, after)


@dataclass(frozen=True)
class Quota:
    """A key's requests in the current window, as the RateLimit-* headers tell it."""

    limit: int
    used: int
    reset: int  # seconds until the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit


class ApiKeys:
    """A presented key: checked, counted against its rate limit, turned into the `Actor`."""

    def __init__(self, now: datetime | None = None):
        self.now = now or utcnow()

    def authenticate(self, key: str, writes: bool, school_id=None) -> ApiKey:
        """The live key (one read by its unique hash); 401 for an unknown, revoked or expired
        key, 403 for a read-only key asked to write. With `school_id` (a school route), the
        same read brings the school for the tenancy check: `self.school` (None: no such
        school)."""
        if school_id is None:
            found = ApiKey.objects(key_hash=key_hash(key)).first()
        else:
            found = self._key_and_school(key, school_id)
        if found is None:
            raise Unauthorized("The API key is not valid.")
        if found.revoked_at is not None:
            raise Unauthorized("The API key was revoked.")
        if found.expires_at is not None and found.expires_at <= self.now:
            raise Unauthorized("The API key has expired.")
        if writes and found.role == "read_only":
            raise Forbidden("This API key may only read (GET).", code="read_only")
        self._touch(found)
        return found

    def _key_and_school(self, key: str, school_id) -> ApiKey | None:
        from documents.accounts import School

        found = list(ApiKey._get_collection().aggregate([
            {"$match": {"key_hash": key_hash(key)}},
            {"$limit": 1},
            {"$addFields": {"_school": {"$literal": school_id}}},
            {"$lookup": {"from": School._get_collection_name(), "localField": "_school",
                         "foreignField": "_id", "as": "_schools"}},
        ]))
        if not found:
            return None
        document = found[0]
        document.pop("_school", None)
        schools = [{k: v for k, v in school.items() if k in ("_id", "company_id", "modules")}
                   for school in document.pop("_schools")]
        self.school = School._from_son(schools[0]) if schools else None
        return ApiKey._from_son(document)

    def _touch(self, key: ApiKey) -> None:
        """Record the use at most once a minute per key: nothing is sent while the copy just
        read is fresh, and the filter lets one of several workers write."""
        stale = self.now - TOUCH_EVERY
        if key.last_used_at is not None and key.last_used_at > stale:
            return
        ApiKey.objects(Q(last_used_at=None) | Q(last_used_at__lte=stale), id=key.id) \
            .update_one(set__last_used_at=self.now)

    def count_request(self, key: ApiKey, limit: int) -> Quota:
        """Count this request in the key's current minute: one atomic `$inc` upsert, shared by
        every worker and machine; the window document expires by TTL."""
        window = int((self.now - EPOCH) / RATE_WINDOW)
        ends = EPOCH + (window + 1) * RATE_WINDOW
        counted = self._increment(f"{key.id}:{window}", ends)
        reset = max(1, int((ends - self.now).total_seconds() + 0.999))
        return Quota(limit=limit, used=counted["count"], reset=reset)

    @staticmethod
    def _increment(window_id: str, ends: datetime) -> dict:
        def increment():
            return ApiKeyWindow._get_collection().find_one_and_update(
                {"_id": window_id}, {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": ends}},
                upsert=True, return_document=ReturnDocument.AFTER)

        try:
            return increment()
        except DuplicateKeyError:
            # The first two requests of a window raced to insert it: now it exists.
            return increment()

    @staticmethod
    def require_quota(quota: Quota) -> None:
        if quota.exceeded:
            raise TooManyRequests(
                f"This API key made more than {quota.limit} requests this minute; try again "
                f"in {quota.reset} seconds.", quota.reset)

    @staticmethod
    def actor(key: ApiKey) -> Actor:
        """The account acts as a school admin of its school, or of its company's schools."""
        return Actor(user_id=key.account_id, role="school_admin", company_id=key.company_id,
                     school_id=key.school_id, service_account=key.account_name)
