-- Tag names are checked by the service (service/tags.py: Unicode letters, digits and '_',
-- NFKC-normalised and casefolded). The database's own check used \w, whose meaning depends on
-- the database's locale: under the C locale (the embedded stack's) it refused 'été' and '日本',
-- and a valid tweet got a 500. Keep a guard that means the same under every locale and
-- collation: 1-64 characters, no whitespace and no '#'.
ALTER TABLE tags DROP CONSTRAINT IF EXISTS tags_name_check;
ALTER TABLE tags ADD CONSTRAINT tags_name_check
    CHECK (char_length(name) BETWEEN 1 AND 64 AND name !~ '[[:space:]#]');
