-- Tags are identified by their normalised name. Looking tag ids up (and creating missing tags)
-- cost a post more than half of its database time; keyed by name, a post is one plain
-- statement again and never reads the tags table.
--   tweet_tags: the link table, (tag, tweet_id) - newest tweets of a tag is an index scan.
--   tags: one row per tag and counter shard; a tag's total is the sum of its shards' counts.
-- tweet_tags has no foreign key to tweets: links are written only by the statement that writes
-- their tweet (service/db/tweets.py POST), and the check would cost every post a row lock.
DROP FUNCTION post_tweet(bigint, text, text[]);
ALTER TABLE tweet_tags RENAME TO tweet_tags_v1;
ALTER TABLE tags RENAME TO tags_v1;

CREATE TABLE tags (
    name        varchar(64) NOT NULL CHECK (name ~ '^\w{1,64}$'),
    shard       smallint    NOT NULL DEFAULT 0,
    tweet_count bigint      NOT NULL,
    PRIMARY KEY (name, shard)
);
INSERT INTO tags (name, shard, tweet_count)
    SELECT g.name, c.shard, c.n FROM tag_counts c JOIN tags_v1 g ON g.id = c.tag_id;

CREATE TABLE tweet_tags (
    tag      varchar(64) NOT NULL,
    tweet_id bigint      NOT NULL,
    PRIMARY KEY (tag, tweet_id)
);
INSERT INTO tweet_tags (tag, tweet_id)
    SELECT g.name, l.tweet_id FROM tweet_tags_v1 l JOIN tags_v1 g ON g.id = l.tag_id;

DROP TABLE tag_counts, tweet_tags_v1, tags_v1;
