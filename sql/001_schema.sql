-- Users, tweets, tags and their links.
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      varchar(32)  NOT NULL CHECK (username ~ '^[A-Za-z0-9_]{3,32}$'),
    full_name     varchar(128) NOT NULL,
    password_hash text         NOT NULL,
    created_at    timestamptz  NOT NULL DEFAULT now()
);
-- Usernames are unique whatever their case: 'Alice' and 'alice' are one user.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

CREATE TABLE tweets (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint        NOT NULL REFERENCES users (id),
    msg        varchar(280)  NOT NULL,
    -- Denormalised copy of the tweet's tag names, so a search needs no aggregate over links.
    tags       text[]        NOT NULL DEFAULT '{}',
    created_at timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX tweets_user_id_idx ON tweets (user_id, id DESC);

CREATE TABLE tags (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        varchar(64) NOT NULL UNIQUE,
    -- Exact number of tweets with this tag, kept in the posting statement: totals cost O(1).
    tweet_count bigint      NOT NULL DEFAULT 0
);

CREATE TABLE tweet_tags (
    tag_id   bigint NOT NULL REFERENCES tags (id),
    tweet_id bigint NOT NULL REFERENCES tweets (id) ON DELETE CASCADE,
    -- Primary key order makes "newest tweets of a tag" an index scan at any table size,
    -- and a duplicate link impossible.
    PRIMARY KEY (tag_id, tweet_id)
);
CREATE INDEX tweet_tags_tweet_id_idx ON tweet_tags (tweet_id);
