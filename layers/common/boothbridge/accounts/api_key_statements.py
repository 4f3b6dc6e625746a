"""Every SQL statement on `api_keys` (`accounts/api_keys.py`), in one place.

The operator's statements (create, list, revoke) run on the SQLAlchemy engine with `:name` parameters; the one a
machine client's every request runs (`AUTHENTICATE`) runs on the raw psycopg pool with `%(name)s` parameters.
"""

from __future__ import annotations

from boothbridge.db.raw import retry_safe

# Serialises the key creations of one operator across processes, so two concurrent creations cannot both see 49
# live keys and both insert. Transaction-scoped: released at COMMIT. (A hash collision between two operators only
# makes them wait for each other briefly.)
LOCK_OWNER = "SELECT pg_advisory_xact_lock(hashtextextended('api_keys:' || CAST(:owner AS text), 0))"

# Live keys only: a revoked one no longer counts towards the limit.
COUNT_LIVE = "SELECT count(*) FROM api_keys WHERE owner_id = :owner AND revoked_at IS NULL"

INSERT = """
    INSERT INTO api_keys (id, owner_id, name, prefix, key_hash)
    VALUES (:id, :owner, :name, :prefix, :key_hash)
    RETURNING created_at
    """

# Newest first; revoked keys stay listed (their tasks name them). Never the hash.
LIST = """
    SELECT id, name, prefix, created_at, last_used_at, revoked_at
    FROM api_keys
    WHERE owner_id = :owner
    ORDER BY created_at DESC, id
    """

# Another operator's key is not found, exactly like an unknown id. Revoking again keeps the first time.
REVOKE = """
    UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
    WHERE id = :id AND owner_id = :owner
    RETURNING revoked_at
    """

# A machine client's request: the live key with this sha256 (the unique index on key_hash), in one round trip with
# the touch of its last_used_at, which is written at most once a minute per key (the condition is on the updated
# row itself, so concurrent requests at the minute's turn re-check it after the first one's write and skip). An
# UPDATE that matches nothing costs an index probe, no write. Retry-safe: running it twice only re-reads the key
# and may move last_used_at by the retry's delay.
AUTHENTICATE = retry_safe(
    """
    WITH k AS (
        SELECT id, owner_id, name, key_hash FROM api_keys WHERE key_hash = %(key_hash)s AND revoked_at IS NULL
    ), touched AS (
        UPDATE api_keys SET last_used_at = now()
        WHERE id = (SELECT id FROM k)
          AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')
        RETURNING id
    )
    SELECT id, owner_id, name, key_hash FROM k
    """
)
