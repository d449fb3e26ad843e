//! Counts shared by every replica, in Redis: one script does the GCRA step
//! and the quota together, atomically, in one round trip, so N replicas
//! never let more than the quota through in a period.

use super::{Counted, Plan};
use gatehouse_connectors::shared::{Script, SharedCache};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// KEYS: rate key, quota key. ARGV: now (µs), T (µs, 0: no rate), τ (µs),
/// quota (0: none), quota key lifetime (ms). Returns {rate_ok, quota_ok,
/// tat (µs), used}. Nothing is counted unless both allow.
const SCRIPT: &str = r#"
local now = tonumber(ARGV[1])
local T = tonumber(ARGV[2])
local tau = tonumber(ARGV[3])
local Q = tonumber(ARGV[4])
local qttl = tonumber(ARGV[5])
local tat = now
local rate_ok = 1
if T > 0 then
  local stored = redis.call('GET', KEYS[1])
  if stored then tat = math.max(tonumber(stored), now) end
  if tat - now > tau then rate_ok = 0 end
end
local used = 0
local quota_ok = 1
if Q > 0 then
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= Q then quota_ok = 0 end
end
if rate_ok == 1 and quota_ok == 1 then
  if T > 0 then
    tat = tat + T
    redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  end
  if Q > 0 then
    used = redis.call('INCR', KEYS[2])
    if used == 1 then redis.call('PEXPIRE', KEYS[2], qttl) end
  end
end
return {rate_ok, quota_ok, string.format('%.0f', tat), used}
"#;

static LIMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SCRIPT));

pub(crate) async fn check(
    store: &SharedCache,
    limit: &str,
    _plan: &str,
    key: &str,
    plan: &Plan,
    now: u64,
) -> Result<Counted, ()> {
    let id: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let now_s = now / 1_000_000;
    let (start, end) = plan.quota.map(|(_, p)| p.bounds(now_s)).unwrap_or((0, 0));
    let keys = [
        store.limit_key(&format!("limit:{limit}:r"), &id),
        store.limit_key(&format!("limit:{limit}:q{start}"), &id),
    ];
    let (t, tau) = plan
        .rate
        .map(|g| (g.interval_us, g.tolerance_us))
        .unwrap_or((0, 0));
    let q = plan.quota.map(|(q, _)| q).unwrap_or(0);
    // The quota key outlives its period by a minute (clock skew between replicas).
    let qttl_ms = (end.saturating_sub(now_s) + 60) * 1000;
    let args = [
        i64::try_from(now).unwrap_or(i64::MAX),
        i64::try_from(t).unwrap_or(i64::MAX),
        i64::try_from(tau).unwrap_or(i64::MAX),
        i64::try_from(q).unwrap_or(i64::MAX),
        i64::try_from(qttl_ms).unwrap_or(i64::MAX),
    ];
    let out = store
        .eval_ints(&LIMIT_SCRIPT, &keys, &args)
        .await
        .map_err(|_| ())?;
    let [rate_ok, quota_ok, tat, used] = out[..] else {
        return Err(());
    };
    Ok(Counted {
        rate_ok: rate_ok == 1,
        quota_ok: quota_ok == 1,
        tat_us: u64::try_from(tat).unwrap_or(now),
        used: u64::try_from(used).unwrap_or(0),
    })
}
