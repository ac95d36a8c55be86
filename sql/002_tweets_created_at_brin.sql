-- Tweets arrive in time order, so a BRIN index finds "tweets since T" (used to repair the cache
-- after a Redis outage) for almost no write cost.
CREATE INDEX tweets_created_at_brin ON tweets USING brin (created_at);
