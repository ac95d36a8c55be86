'use strict';
// The Node.js peer of the benchmarks (bench/load.py): Fastify, pg and ioredis serving /ping,
// search (hit, miss, bypass) and post with the service's cache design, on the same PostgreSQL,
// Redis, data and settings. The SQL statements and Redis scripts are the service's own, handed
// over by the harness in PEER_SPEC (a JSON file written from service/db/tweets.py and
// service/cache/tags.py), so both stacks ask the servers for exactly the same work.
//
// Cache design, as in service/timeline.py: per tag a Redis sorted set of the newest tweets' JSON
// plus a total, read in one pipelined round trip with the tag's version; a miss fills it from
// PostgreSQL only if the version is unchanged (FILL script); a post adds itself to every cached
// tag, bumps versions and publishes the tags (ADD script); an in-process cache of whole responses
// (1 s) is dropped per tag on the published invalidations. ioredis' auto-pipelining plays the part
// of service/cache/batch.py. Left out: the outage handling (breaker, feed heartbeat, repair).
const fs = require('node:fs');
const Fastify = require('fastify');
const { Pool } = require('pg');
const Redis = require('ioredis');
const { createVerifier } = require('fast-jwt');

const env = process.env;
const spec = JSON.parse(fs.readFileSync(env.PEER_SPEC, 'utf8'));
const cacheOn = env.CACHE_ENABLED !== 'false';
const prefix = env.CACHE_PREFIX || spec.cache_prefix;  // a side-by-side member's own
const LOCAL_TTL_MS = spec.local_cache_ttl * 1000;

const pool = new Pool({ connectionString: env.DATABASE_URL, max: spec.pool_max });
const redis = new Redis(env.REDIS_URL, { enableAutoPipelining: true, maxRetriesPerRequest: 1 });
const feed = new Redis(env.REDIS_URL);
redis.defineCommand('fill', { lua: spec.fill_script });
redis.defineCommand('add', { lua: spec.add_script });
const verify = createVerifier({ key: env.TOKEN_SECRET, algorithms: ['HS256'], allowedIss: 'simple-twitter',
  requiredClaims: ['exp', 'iat', 'sub', 'iss'], cache: 10000 });

// -- in-process page cache, dropped per tag by the invalidation channel --
const local = new Map(); // key -> {body, until, tag}
const byTag = new Map(); // tag -> Set of keys
function localGet(key) {
  const hit = local.get(key);
  if (hit === undefined) return undefined;
  if (hit.until < Date.now()) { local.delete(key); return undefined; }
  return hit.body;
}
function localPut(key, tag, body) {
  if (local.size > 50000) { local.clear(); byTag.clear(); }
  local.set(key, { body, until: Date.now() + LOCAL_TTL_MS, tag });
  if (!byTag.has(tag)) byTag.set(tag, new Set());
  byTag.get(tag).add(key);
}
function dropTag(tag) {
  const keys = byTag.get(tag);
  if (!keys) return;
  for (const key of keys) local.delete(key);
  byTag.delete(tag);
}
feed.subscribe(`${prefix}:inv`);
feed.on('message', (_channel, message) => { for (const tag of message.split(' ')) dropTag(tag); });

// -- validation, as service/validate.py and service/tagrules.py --
class BadRequest extends Error {
  constructor(field, why) { super(`${field}: ${why}`); this.errors = { [field]: why }; }
}
const WORD = /^[\p{L}\p{N}_]{1,64}$/u;
const HASHTAG = /#([\p{L}\p{N}_]+)/gu;
function normalise(raw) {
  let tag = raw.trim().normalize('NFKC').toLowerCase();
  if (tag.startsWith('#')) tag = tag.slice(1);
  if (!WORD.test(tag)) throw new BadRequest('tags', `not a tag: ${raw.slice(0, 80)}`);
  return tag;
}
function tweetTags(given, msg) {
  const tags = new Set(given.map(normalise));
  for (const m of msg.normalize('NFKC').matchAll(HASHTAG)) {
    if (tags.size >= 10) break;
    try { tags.add(normalise(m[1])); } catch { /* stays text */ }
  }
  return [...tags].sort();
}
function intArg(query, name, dflt, low, high) {
  const raw = query[name];
  if (raw === undefined) return dflt;
  if (!/^[0-9]+$/.test(raw)) throw new BadRequest(name, 'must be an integer');
  const n = Number(raw);
  if (n < low || n > high) throw new BadRequest(name, `must be ${low}-${high}`);
  return n;
}
function identify(request) {
  const [scheme, token] = (request.headers.authorization || '').split(' ');
  if (!token || scheme.toLowerCase() !== 'bearer') throw Object.assign(new Error('Missing bearer token'), { statusCode: 401 });
  try {
    const claims = verify(token);
    return { userId: Number(claims.sub), username: String(claims.name) };
  } catch {
    throw Object.assign(new Error('Invalid or expired token'), { statusCode: 401 });
  }
}

// -- the page, as service/timeline.py --
function pageJson(items, total, q) {
  return `{"data":[${items.join(',')}],"code":"success","pagination":{"total":${total},"page":${q.page},"page_size":${q.pageSize}}}`;
}
function windowAnswers(found, count, cached, total, offset, beforeId) {
  if (found === count || cached >= total) return true;
  return beforeId === null && offset + found >= total;
}
const NO_LIMIT = '9223372036854775807';
async function searchDb(q) {
  const { rows } = await pool.query({ name: 'search_page', text: spec.search_page,
    values: [q.tag, q.pageSize, (q.page - 1) * q.pageSize, q.beforeId ?? NO_LIMIT] });
  return pageJson(rows[0].items ? [rows[0].items] : [], rows[0].total, q);
}
const fills = new Map(); // single flight: one fill per tag at a time
async function fill(tag, version) {
  const { rows } = await pool.query({ name: 'search_rows', text: spec.search_rows,
    values: [tag, spec.cache_size, 0, NO_LIMIT] });
  const total = Number(rows[0].total);
  const tweets = rows.filter((r) => r.id !== null).map((r) => [r.id, r.body]);
  const args = [`${prefix}:t:${tag}`, `${prefix}:v:${tag}`, version, spec.cache_ttl_ms, total];
  for (const [id, body] of tweets) args.push(id, body);
  const stored = await redis.fill(2, ...args.slice(0, 2), ...args.slice(2));
  return { total, tweets, current: stored === 1 };
}
async function searchCached(q) {
  const key = `${prefix}:t:${q.tag}`;
  const offset = (q.page - 1) * q.pageSize;
  const first = q.beforeId === null
    ? redis.zrevrange(key, offset, offset + q.pageSize - 1)
    : redis.zrevrangebyscore(key, `(${q.beforeId}`, 1, 'LIMIT', offset, q.pageSize);
  const [members, score, card, version] = await Promise.all(
    [first, redis.zscore(key, '#n'), redis.zcard(key), redis.get(`${prefix}:v:${q.tag}`)]);
  if (score !== null) {
    const total = -Number(score) - 1;
    const items = members.filter((m) => m !== '#n');
    if (windowAnswers(items.length, q.pageSize, card - 1, total, offset, q.beforeId)) return [pageJson(items, total, q), 'HIT'];
    return [await searchDb(q), 'MISS'];
  }
  let flight = fills.get(q.tag);
  if (!flight) {
    flight = fill(q.tag, version ?? '').finally(() => fills.delete(q.tag));
    fills.set(q.tag, flight);
  }
  const filled = await flight;
  let tweets = filled.tweets;
  if (q.beforeId !== null) tweets = tweets.filter(([id]) => BigInt(id) < BigInt(q.beforeId));
  const items = tweets.slice(offset, offset + q.pageSize).map(([, body]) => body);
  if (filled.current && windowAnswers(items.length, q.pageSize, filled.tweets.length, filled.total, offset, q.beforeId)) {
    return [pageJson(items, filled.total, q), 'MISS'];
  }
  return [await searchDb(q), 'MISS'];
}

// -- the app --
const app = Fastify({ logger: false, bodyLimit: 65536 });
app.setErrorHandler((error, _request, reply) => {
  const status = error.errors ? 400 : error.statusCode && error.statusCode < 500 ? error.statusCode : 500;
  const body = { message: status === 500 ? 'Internal server error' : error.message,
    code: status === 500 ? 'internalError' : status === 401 ? 'unauthorized' : 'badRequest' };
  if (error.errors) body.errors = error.errors;
  reply.code(status).type('application/json').send(JSON.stringify(body));
});
app.get('/ping', (_request, reply) => { reply.type('application/json').send('{"pong":true}'); });
app.get('/api/v1/search-tweets', async (request, reply) => {
  identify(request);
  if (typeof request.query.tag !== 'string') throw new BadRequest('tag', 'is required');
  const q = { tag: normalise(request.query.tag), page: intArg(request.query, 'page', 1, 1, 100),
    pageSize: intArg(request.query, 'page_size', 10, 1, 100), beforeId: null };
  const before = request.query.before_id;
  if (before !== undefined) {
    if (!/^[0-9]{1,19}$/.test(before) || BigInt(before) < 1n || BigInt(before) > 9223372036854775807n) {
      throw new BadRequest('before_id', 'must be an integer 1-9223372036854775807');
    }
    q.beforeId = before;
  }
  let body; let state;
  if (!cacheOn) {
    [body, state] = [await searchDb(q), 'BYPASS'];
  } else {
    const key = `${q.tag}|${q.page}|${q.pageSize}|${q.beforeId}`;
    body = localGet(key);
    state = 'HIT';
    if (body === undefined) {
      [body, state] = await searchCached(q);
      localPut(key, q.tag, body);
    }
  }
  reply.type('application/json').header('X-Cache', state).send(body);
});
app.post('/api/v1/tweet', async (request, reply) => {
  const user = identify(request);
  const data = request.body;
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new BadRequest('body', 'must be a JSON object');
  if (typeof data.msg !== 'string' || !data.msg.trim() || data.msg.length > 280) throw new BadRequest('msg', 'must be 1-280 characters');
  const given = data.tags ?? [];
  if (!Array.isArray(given) || given.length > 10 || !given.every((t) => typeof t === 'string')) throw new BadRequest('tags', 'must be a list of at most 10 strings');
  const tags = tweetTags(given, data.msg);
  const { rows } = await pool.query({ name: 'post', text: spec.post, values: [user.userId, data.msg, tags, user.username] });
  const { id, body } = rows[0];
  if (cacheOn && tags.length) {
    const keys = tags.flatMap((t) => [`${prefix}:t:${t}`, `${prefix}:v:${t}`]);
    await redis.add(keys.length, ...keys, spec.cache_size, spec.cache_ttl_ms * 2, `${prefix}:inv`, tags.join(' '), id, body, tags.length);
    for (const t of tags) dropTag(t);
  }
  reply.code(201).type('application/json').send(`{"data":${body},"code":"success"}`);
});

app.listen({ host: '127.0.0.1', port: Number(env.PORT), backlog: 1024 }).then(() => {
  console.log(`node peer on ${env.PORT}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => { app.close().then(() => Promise.all([pool.end(), redis.quit(), feed.quit()])).finally(() => process.exit(0)); });
}
