-- A search page as a function call. Through a transaction-mode pooler (PgBouncer) the service can
-- keep no prepared statement, so each search was parsed and planned anew by PostgreSQL: most of
-- its time there. Called as a function, the service's statement is planned in microseconds and the
-- query inside keeps its plan on each PostgreSQL connection (PL/pgSQL caches it, a generic plan
-- once it is no dearer), as a prepared statement's would. Direct connections keep their prepared
-- statements and do not call these (service/db/tweets.py, USE_POOLER_SEARCH_FUNCTIONS).

-- The tag's total and a page of (id, JSON) rows, newest first; always at least one row: with no
-- tweets on the page, a single row with a NULL id carries the total (tweets.SEARCH_ROWS).
CREATE FUNCTION search_rows(p_tag text, p_limit bigint, p_offset bigint, p_before bigint)
RETURNS TABLE (total bigint, id bigint, body text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT s.n, p.tweet_id, p.tweet_body
    FROM (SELECT coalesce(sum(g.tweet_count), 0)::bigint FROM tags g WHERE g.name = p_tag) s(n)
    LEFT JOIN LATERAL (
        SELECT t.id AS tweet_id, t.body AS tweet_body
        FROM (SELECT l.tweet_id FROM tweet_tags l WHERE l.tag = p_tag AND l.tweet_id < p_before
              ORDER BY l.tweet_id DESC LIMIT p_limit OFFSET p_offset) page
        JOIN tweets t ON t.id = page.tweet_id) p ON true
    ORDER BY p.tweet_id DESC;
END
$$;

-- The tag's total and the page as one comma-joined JSON text (tweets.SEARCH_PAGE).
CREATE FUNCTION search_page(p_tag text, p_limit bigint, p_offset bigint, p_before bigint)
RETURNS TABLE (total bigint, items text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT (SELECT coalesce(sum(g.tweet_count), 0)::bigint FROM tags g WHERE g.name = p_tag),
           coalesce((SELECT string_agg(p.body, ',' ORDER BY p.id DESC)
                     FROM (SELECT t.id, t.body
                           FROM (SELECT l.tweet_id FROM tweet_tags l WHERE l.tag = p_tag
                                 AND l.tweet_id < p_before ORDER BY l.tweet_id DESC
                                 LIMIT p_limit OFFSET p_offset) page
                           JOIN tweets t ON t.id = page.tweet_id) p), '');
END
$$;
