-- Posting used to lock the tag's row (to bump tags.tweet_count) until commit, so every post to a
-- hot tag queued behind the previous one's WAL flush. Counts now live in 32 shards per tag: a
-- post bumps the shard of its backend, totals are the sum of at most 32 rows.
CREATE TABLE tag_counts (
    tag_id bigint   NOT NULL REFERENCES tags (id),
    shard  smallint NOT NULL,
    n      bigint   NOT NULL,
    PRIMARY KEY (tag_id, shard)
);
INSERT INTO tag_counts (tag_id, shard, n) SELECT id, 0, tweet_count FROM tags WHERE tweet_count > 0;
ALTER TABLE tags DROP COLUMN tweet_count;

-- One call, one round trip and one transaction, whatever the number of tags. Each statement of
-- a plpgsql function sees rows committed before it started, so a tag created concurrently by
-- another post (ON CONFLICT DO NOTHING waited for it) is found by the statements after it.
-- Existing tag rows are never locked; count shards are locked in tag id order (no deadlocks).
CREATE FUNCTION post_tweet(p_user bigint, p_msg text, p_tags text[],
                           OUT tweet_id bigint, OUT tweet_created_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tags (name) SELECT n FROM unnest(p_tags) AS n ORDER BY n ON CONFLICT (name) DO NOTHING;
    INSERT INTO tweets (user_id, msg, tags) VALUES (p_user, p_msg, p_tags)
        RETURNING id, created_at INTO tweet_id, tweet_created_at;
    INSERT INTO tweet_tags (tag_id, tweet_id)
        SELECT g.id, post_tweet.tweet_id FROM tags g WHERE g.name = ANY (p_tags);
    INSERT INTO tag_counts AS c (tag_id, shard, n)
        SELECT g.id, pg_backend_pid() % 32, 1 FROM tags g WHERE g.name = ANY (p_tags) ORDER BY g.id
        ON CONFLICT (tag_id, shard) DO UPDATE SET n = c.n + 1;
END
$$;
