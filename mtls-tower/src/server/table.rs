//! The listener's table of open connections: the cap on open connections, the bound on
//! handshakes in progress, and which connection to close when room is needed.
//!
//! Every connection holds a [`ConnSlot`] from before its `accept` until its socket is closed. The
//! table knows each connection's phase:
//!
//! - *lingering*: its handshake failed and it is draining before the close;
//! - *hello*: accepted, its ClientHello not complete yet (a silent or dribbling peer stays here);
//! - *handshake*: ClientHello received, the rest of the handshake in progress;
//! - *serving*: handshake done.
//!
//! When room is needed (the connection cap is reached, too many handshakes are in progress, or
//! the process is out of file descriptors) one connection is asked to close, the least valuable
//! first: the oldest lingering, then the oldest in *hello*, then the oldest in *handshake*, then
//! the oldest *serving* connection that has no request in flight. A good client leaves *hello*
//! within a round trip of its connect, so a flood of silent peers sheds itself, not good clients;
//! this is what nginx does at `worker_connections` ("reusing connections").

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use tokio::sync::{oneshot, Notify};
use tokio::time::{Duration, Instant};

/// Why a connection is asked to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The listener is at its connection cap and needs room for a new connection.
    Capacity,
    /// More handshakes are in progress than allowed; this one is the oldest unfinished.
    Handshakes,
    /// The process is out of file descriptors.
    Descriptors,
    /// The server is shutting down.
    Shutdown,
}

impl CloseReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CloseReason::Capacity => "connection cap reached",
            CloseReason::Handshakes => "too many handshakes in progress",
            CloseReason::Descriptors => "out of file descriptors",
            CloseReason::Shutdown => "server shutting down",
        }
    }
}

type Shed = oneshot::Sender<CloseReason>;

/// A connection not yet serving: its close signal, and since when it is in its phase.
struct Pending {
    shed: Shed,
    since: Instant,
}

/// Sent by the table to ask a connection to close.
pub(crate) type CloseSignal = oneshot::Receiver<CloseReason>;

/// A serving connection: its close signal (taken when sent) and whether it is idle.
struct Serving {
    shed: Option<Shed>,
    /// `None` when the connection left through `MtlsListener::accept`: we cannot close it
    /// gracefully, so it is never chosen.
    activity: Option<Arc<Activity>>,
}

#[derive(Default)]
struct Inner {
    /// Numbers connections and, separately, each entry into a phase, so that every phase's map
    /// is ordered by time in that phase: its first entry is the one waiting longest.
    next_id: u64,
    /// Slots taken: every connection from accept until its socket closes.
    open: usize,
    /// Set by `close_all`: no connection is admitted any more (shutdown).
    closing: bool,
    lingering: BTreeMap<u64, Pending>,
    hello: BTreeMap<u64, Pending>,
    handshake: BTreeMap<u64, Pending>,
    serving: BTreeMap<u64, Serving>,
    per_ip: HashMap<IpAddr, usize>,
}

/// A connection younger than this in *hello* or *handshake* is likely a good client a round trip
/// from done: it is closed for room only once it is older.
const YOUNG: Duration = Duration::from_millis(250);

/// Sends `reason` to the first entry of `map` (other than `spare`) that is still listening,
/// dropping entries whose connection has stopped listening. With `older_than`, only entries in
/// the phase since before it. Returns whether one was asked.
fn ask_first(
    map: &mut BTreeMap<u64, Pending>,
    reason: CloseReason,
    spare: Option<u64>,
    older_than: Option<Instant>,
) -> bool {
    loop {
        let Some((&key, pending)) = map.iter().find(|(k, _)| Some(**k) != spare) else {
            return false;
        };
        if older_than.is_some_and(|t| pending.since > t) {
            return false;
        }
        let Some(pending) = map.remove(&key) else {
            return false;
        };
        // A send fails only when the connection is ending anyway: try the next one.
        if pending.shed.send(reason).is_ok() {
            return true;
        }
    }
}

impl Inner {
    /// Asks the least valuable connection to close to make room (a new connection at the cap,
    /// or descriptors): the oldest lingering close, else the oldest in *hello* or *handshake* for
    /// longer than [`YOUNG`], else the oldest serving connection with no request in flight.
    /// Never a busy connection, never a young handshake: waiting is better than closing a good
    /// client mid-handshake. Returns whether one was asked.
    fn shed_for_room(&mut self, reason: CloseReason) -> bool {
        // `None` only while the clock itself is younger than YOUNG: nothing is old yet.
        let old = Instant::now().checked_sub(YOUNG);
        ask_first(&mut self.lingering, reason, None, None)
            || old.is_some_and(|t| ask_first(&mut self.hello, reason, None, Some(t)))
            || old.is_some_and(|t| ask_first(&mut self.handshake, reason, None, Some(t)))
            || self.shed_idle(reason)
    }

    /// Asks the oldest idle serving connection to close. The scan is done only when room is
    /// needed, and idle hoarders are the oldest, so it stops early.
    fn shed_idle(&mut self, reason: CloseReason) -> bool {
        for s in self.serving.values_mut() {
            if !s.activity.as_ref().is_some_and(|a| a.is_idle()) {
                continue;
            }
            // A connection upgraded away from HTTP (a WebSocket) no longer listens: skip it.
            if let Some(shed) = s.shed.take() {
                if shed.send(reason).is_ok() {
                    return true;
                }
            }
        }
        false
    }

    /// Enforces the bound on handshakes: the oldest connection still waiting for its ClientHello
    /// (never `newcomer`), else the oldest handshake. Only handshakes: closing anything else would
    /// not bring the count down.
    fn shed_for_handshake_bound(&mut self, newcomer: u64) -> bool {
        ask_first(
            &mut self.hello,
            CloseReason::Handshakes,
            Some(newcomer),
            None,
        ) || ask_first(&mut self.handshake, CloseReason::Handshakes, None, None)
    }

    /// When the oldest young handshake becomes old enough to be closed for room.
    fn next_old(&self) -> Option<Instant> {
        let first = |m: &BTreeMap<u64, Pending>| m.values().next().map(|p| p.since);
        [first(&self.hello), first(&self.handshake)]
            .into_iter()
            .flatten()
            .min()
            .map(|since| since + YOUNG)
    }

    fn handshakes(&self) -> usize {
        self.hello.len() + self.handshake.len()
    }

    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// The open connections of one listener. See the module docs.
pub(crate) struct ConnTable {
    inner: Mutex<Inner>,
    /// Notified (all waiters) whenever a slot is freed.
    room: Notify,
    max_connections: usize,
    max_handshakes: usize,
    max_per_ip: Option<usize>,
}

/// Every live table, so that a listener out of file descriptors can ask another listener's idle
/// connections to close: descriptors are shared by the whole process.
fn registry() -> &'static Mutex<Vec<Weak<ConnTable>>> {
    static TABLES: OnceLock<Mutex<Vec<Weak<ConnTable>>>> = OnceLock::new();
    TABLES.get_or_init(Mutex::default)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks (map operations and sends), so a poisoned lock
    // still holds consistent data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ConnTable {
    pub(crate) fn new(
        max_connections: usize,
        max_handshakes: usize,
        max_per_ip: Option<usize>,
    ) -> Arc<ConnTable> {
        let table = ConnTable::unregistered(max_connections, max_handshakes, max_per_ip);
        let mut tables = lock(registry());
        tables.retain(|t| t.strong_count() > 0);
        tables.push(Arc::downgrade(&table));
        drop(tables);
        table
    }

    /// A table that other listeners' descriptor shortages cannot reach (for tests).
    fn unregistered(
        max_connections: usize,
        max_handshakes: usize,
        max_per_ip: Option<usize>,
    ) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            inner: Mutex::default(),
            room: Notify::new(),
            max_connections: max_connections.max(1),
            max_handshakes: max_handshakes.max(1),
            max_per_ip,
        })
    }

    /// A slot for a connection just accepted, waiting while the listener is at its cap. At the
    /// cap it asks one connection to close (see [`Inner::shed_for_room`]); when none may be asked
    /// (every one is busy, or a handshake too young to judge), it waits for a connection to end or
    /// a handshake to come of age: it never spins.
    pub(crate) async fn reserve(self: &Arc<Self>) -> ConnSlot {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a slot freed in between is not missed.
            notified.as_mut().enable();
            let retry_at = {
                let mut inner = lock(&self.inner);
                if inner.open < self.max_connections {
                    inner.open += 1;
                    let id = inner.next();
                    return ConnSlot {
                        table: self.clone(),
                        id,
                        key: id,
                        ip: None,
                        phase: Phase::Reserved,
                    };
                }
                if inner.shed_for_room(CloseReason::Capacity) {
                    None
                } else {
                    inner.next_old()
                }
            };
            match retry_at {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Asks up to `n` connections to close because the process is out of file descriptors:
    /// this listener's own first, then other listeners' in the process. Returns how many.
    pub(crate) fn shed_for_descriptors(self: &Arc<Self>, n: usize) -> usize {
        let others: Vec<Arc<ConnTable>> =
            lock(registry()).iter().filter_map(Weak::upgrade).collect();
        self.shed_for_descriptors_among(n, &others)
    }

    fn shed_for_descriptors_among(self: &Arc<Self>, n: usize, tables: &[Arc<ConnTable>]) -> usize {
        let mut shed = 0;
        {
            let mut inner = lock(&self.inner);
            while shed < n && inner.shed_for_room(CloseReason::Descriptors) {
                shed += 1;
            }
        }
        if shed < n {
            for table in tables.iter().filter(|t| !Arc::ptr_eq(t, self)) {
                let mut inner = lock(&table.inner);
                while shed < n && inner.shed_for_room(CloseReason::Descriptors) {
                    shed += 1;
                }
            }
        }
        shed
    }

    /// Asks every connection to close (graceful shutdown).
    pub(crate) fn close_all(&self, reason: CloseReason) {
        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        inner.closing = true;
        for shed in std::mem::take(&mut inner.lingering)
            .into_values()
            .chain(std::mem::take(&mut inner.hello).into_values())
            .chain(std::mem::take(&mut inner.handshake).into_values())
            .map(|p| p.shed)
            .chain(inner.serving.values_mut().filter_map(|s| s.shed.take()))
        {
            let _ = shed.send(reason);
        }
    }

    /// Waits until no slot is taken.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.inner).open == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Open connections (and reservations).
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        lock(&self.inner).open
    }
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = lock(&self.inner);
        f.debug_struct("ConnTable")
            .field("open", &inner.open)
            .field("handshakes", &inner.handshakes())
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reserved,
    Lingering,
    Hello,
    Handshake,
    Serving,
}

/// One connection's place in its listener's [`ConnTable`], from before `accept` until the socket
/// is closed (dropping it frees the slot).
pub(crate) struct ConnSlot {
    table: Arc<ConnTable>,
    id: u64,
    /// Its key in its phase's map (a new one at each phase: the maps are ordered by entry).
    key: u64,
    ip: Option<IpAddr>,
    phase: Phase,
}

/// Why a connection was refused at accept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its address has `max_connections_per_ip` open already.
    TooManyFromAddress,
    /// The listener is shutting down.
    ShuttingDown,
}

impl ConnSlot {
    /// The accepted connection from `ip` takes this slot and starts its handshake. Returns the
    /// signal by which the table may ask it to close. When too many handshakes are in progress,
    /// the oldest unfinished one (never this one) is asked to close.
    pub(crate) fn admit(&mut self, ip: IpAddr) -> Result<CloseSignal, Refused> {
        let (tx, rx) = oneshot::channel();
        let mut inner = lock(&self.table.inner);
        if inner.closing {
            return Err(Refused::ShuttingDown);
        }
        if let Some(max) = self.table.max_per_ip {
            let count = inner.per_ip.entry(ip).or_insert(0);
            if *count >= max {
                return Err(Refused::TooManyFromAddress);
            }
            *count += 1;
            self.ip = Some(ip);
        }
        self.key = inner.next();
        inner.hello.insert(
            self.key,
            Pending {
                shed: tx,
                since: Instant::now(),
            },
        );
        self.phase = Phase::Hello;
        if inner.handshakes() > self.table.max_handshakes {
            inner.shed_for_handshake_bound(self.key);
        }
        Ok(rx)
    }

    /// Moves the connection to `to`, taking its close signal along. `false` if it was already
    /// asked to close (its signal is then on its way).
    fn advance(&mut self, to: Phase, activity: Option<Arc<Activity>>) -> bool {
        let mut inner = lock(&self.table.inner);
        let shed = match self.phase {
            Phase::Hello => inner.hello.remove(&self.key),
            Phase::Handshake => inner.handshake.remove(&self.key),
            Phase::Lingering => inner.lingering.remove(&self.key),
            Phase::Serving | Phase::Reserved => None,
        };
        self.phase = to;
        let Some(Pending { shed, .. }) = shed else {
            return false;
        };
        self.key = inner.next();
        let pending = Pending {
            shed,
            since: Instant::now(),
        };
        match to {
            Phase::Handshake => {
                inner.handshake.insert(self.key, pending);
            }
            Phase::Lingering => {
                inner.lingering.insert(self.key, pending);
                if inner.lingering.len() > MAX_LINGERING {
                    // Bounded in count too: the oldest lingering close ends at once.
                    ask_first(&mut inner.lingering, CloseReason::Capacity, None, None);
                }
            }
            Phase::Serving => {
                inner.serving.insert(
                    self.key,
                    Serving {
                        shed: Some(pending.shed),
                        activity,
                    },
                );
            }
            Phase::Hello | Phase::Reserved => {}
        }
        true
    }

    /// The ClientHello is complete.
    pub(crate) fn hello_received(&mut self) -> bool {
        self.advance(Phase::Handshake, None)
    }

    /// The handshake failed; the connection drains before its close.
    pub(crate) fn lingering(&mut self) -> bool {
        self.advance(Phase::Lingering, None)
    }

    /// The handshake is done. With `activity`, the table may close the connection when it is
    /// idle and room is needed; without, never.
    pub(crate) fn serving(&mut self, activity: Option<Arc<Activity>>) -> bool {
        self.advance(Phase::Serving, activity)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        {
            let mut inner = lock(&self.table.inner);
            match self.phase {
                Phase::Reserved => {}
                Phase::Lingering => drop(inner.lingering.remove(&self.key)),
                Phase::Hello => drop(inner.hello.remove(&self.key)),
                Phase::Handshake => drop(inner.handshake.remove(&self.key)),
                Phase::Serving => drop(inner.serving.remove(&self.key)),
            }
            inner.open -= 1;
            if let Some(ip) = self.ip {
                if let Some(count) = inner.per_ip.get_mut(&ip) {
                    *count -= 1;
                    if *count == 0 {
                        inner.per_ip.remove(&ip);
                    }
                }
            }
        }
        self.table.room.notify_waiters();
    }
}

impl std::fmt::Debug for ConnSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSlot")
            .field("id", &self.id)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// The most failed handshakes lingering before their close at once.
const MAX_LINGERING: usize = 256;

/// "Not set" for the millisecond fields of [`Activity`].
const UNSET: u64 = u64::MAX;
/// A request head began, its time not read yet.
const HEAD_UNSTAMPED: u64 = u64::MAX - 1;

/// What a served connection is doing, for its timeouts and for the table's choice of an idle
/// connection to close. Written by the connection's stream (bytes received) and its service
/// (requests started and finished), read by the task that drives the connection.
#[derive(Debug)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct Activity {
    started: Instant,
    /// When the client certificate's authority ends ([`ClientCert::valid_until`]), on the
    /// monotonic clock and on the wall clock: the connection closes then, whatever its other
    /// deadlines; the wall clock catches a clock stepped forward (or a suspended host) the next
    /// time the driver looks at its deadlines (at least every idle timeout).
    ///
    /// [`ClientCert::valid_until`]: crate::ClientCert::valid_until
    certificate_ends: Option<(Instant, std::time::SystemTime)>,
    in_flight: AtomicU32,
    requests: AtomicU64,
    /// Milliseconds after `started` at which the connection last became idle (no request in
    /// flight); 0 until the first request.
    idle_since_ms: AtomicU64,
    /// Milliseconds after `started` of the first byte received while idle: a request head has
    /// begun. `UNSET` otherwise; `HEAD_UNSTAMPED` until the driver reads the clock for it (in the
    /// common case the head completes first, and no clock is read at all).
    head_started_ms: AtomicU64,
    /// Changes when a deadline may have moved earlier (a request head began), so the driver
    /// recomputes only then. Requests starting or finishing only move deadlines later, which the
    /// driver finds when its timer fires: nothing on the per-request path touches the timer.
    epoch: AtomicU64,
    /// Whether bytes received while idle start the request-header timer (HTTP/1).
    arm_on_bytes: AtomicBool,
}

#[cfg_attr(not(feature = "axum"), allow(dead_code))]
impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            started: Instant::now(),
            certificate_ends: None,
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(UNSET),
            epoch: AtomicU64::new(0),
            arm_on_bytes: AtomicBool::new(true),
        }
    }

    /// The connection must end at `at` (its client certificate's end, on both clocks), if not
    /// before.
    pub(crate) fn ending_at(mut self, at: Option<(Instant, std::time::SystemTime)>) -> Activity {
        self.certificate_ends = at;
        self
    }

    /// When the client certificate's authority ends, if it has one.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn certificate_ends(&self) -> Option<Instant> {
        self.certificate_ends.map(|(instant, _)| instant)
    }

    /// Bytes while idle do not start a request head (HTTP/2: pings, window updates).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn ignore_bytes_while_idle(&self) {
        self.arm_on_bytes.store(false, Relaxed);
    }

    fn ms_since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(HEAD_UNSTAMPED - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Relaxed) == 0
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Relaxed)
    }

    /// Plaintext bytes arrived from the client.
    pub(crate) fn bytes_received(&self) {
        if self.in_flight.load(Relaxed) == 0
            && self.head_started_ms.load(Relaxed) == UNSET
            && self.arm_on_bytes.load(Relaxed)
        {
            self.head_started_ms.store(HEAD_UNSTAMPED, Relaxed);
            self.epoch.fetch_add(1, Relaxed);
        }
    }

    /// Reads the clock for a head that began since the last look.
    fn stamp_head(&self) {
        if self.head_started_ms.load(Relaxed) == HEAD_UNSTAMPED {
            let now = self.ms_since_start();
            let _ = self
                .head_started_ms
                .compare_exchange(HEAD_UNSTAMPED, now, Relaxed, Relaxed);
        }
    }

    /// A request head is complete and the service was called.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        self.head_started_ms.store(UNSET, Relaxed);
    }

    /// A request's response is finished (or dropped).
    pub(crate) fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Relaxed) == 1 {
            self.idle_since_ms.store(self.ms_since_start(), Relaxed);
        }
    }

    /// When a request head that has begun (and not yet finished) must be complete: the only
    /// deadline that can move earlier between two looks of the driver.
    pub(crate) fn header_deadline(&self, t: &Timeouts) -> Option<Instant> {
        self.stamp_head();
        match self.head_started_ms.load(Relaxed) {
            UNSET => None,
            ms => self.at(ms).checked_add(t.header),
        }
    }

    /// The connection's next deadline under `t`, and what it is for; `now` is when busy
    /// connections re-check (every idle timeout, so that the idle deadline is exact once idle).
    pub(crate) fn next_deadline(&self, t: &Timeouts, now: Instant) -> (Instant, Expiry) {
        self.stamp_head();
        let mut next = (
            t.max_age.and_then(|a| self.started.checked_add(a)),
            Expiry::MaxAge,
        );
        let mut earliest = |at: Option<Instant>, why: Expiry| {
            if let Some(at) = at {
                if next.0.is_none_or(|n| at < n) {
                    next = (Some(at), why);
                }
            }
        };
        earliest(self.certificate_ends(), Expiry::CertificateEnded);
        if self
            .certificate_ends
            .is_some_and(|(_, wall)| std::time::SystemTime::now() > wall)
        {
            return (now, Expiry::CertificateEnded);
        }
        if self.in_flight.load(Relaxed) == 0 {
            let head = self.head_started_ms.load(Relaxed);
            if self.requests.load(Relaxed) == 0 {
                earliest(self.started.checked_add(t.header), Expiry::FirstRequest);
            } else if head != UNSET {
                earliest(self.at(head).checked_add(t.header), Expiry::Header);
            }
            let idle = self.at(self.idle_since_ms.load(Relaxed));
            earliest(idle.checked_add(t.idle), Expiry::Idle);
        } else {
            earliest(now.checked_add(t.idle), Expiry::Recheck);
        }
        // About a year: "no deadline" for a timer.
        let never = now + Duration::from_secs(365 * 24 * 3600);
        (next.0.unwrap_or(never), next.1)
    }
}

/// `at + d`, or about a year from `at` when that does not fit.
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(365 * 24 * 3600))
}

/// The timeouts a served connection's driver applies.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
    pub(crate) max_age: Option<Duration>,
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) enum Expiry {
    FirstRequest,
    Header,
    Idle,
    MaxAge,
    /// The client certificate (or its chain) expired.
    CertificateEnded,
    /// Not a timeout: a busy connection's periodic look at its deadlines.
    Recheck,
}

#[cfg_attr(not(feature = "axum"), allow(dead_code))]
impl Expiry {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Expiry::FirstRequest => "no request within the request-header timeout",
            Expiry::Header => "request head not complete within the request-header timeout",
            Expiry::Idle => "idle timeout",
            Expiry::MaxAge => "maximum connection age",
            Expiry::CertificateEnded => "the client certificate or its chain expired",
            Expiry::Recheck => "recheck",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn table(max_connections: usize, max_handshakes: usize) -> Arc<ConnTable> {
        ConnTable::unregistered(max_connections, max_handshakes, None)
    }

    async fn admitted(t: &Arc<ConnTable>) -> (ConnSlot, CloseSignal) {
        let mut slot = t.reserve().await;
        let rx = slot.admit(IP).unwrap();
        (slot, rx)
    }

    #[tokio::test]
    async fn too_many_handshakes_sheds_the_oldest_in_hello() {
        let t = table(100, 2);
        let (_a, mut a) = admitted(&t).await;
        let (_b, mut b) = admitted(&t).await;
        let (_c, mut c) = admitted(&t).await;
        assert_eq!(a.try_recv(), Ok(CloseReason::Handshakes));
        assert!(b.try_recv().is_err());
        assert!(c.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_connection_past_its_client_hello_is_shed_after_those_still_waiting() {
        let t = table(100, 2);
        let (mut a, mut a_rx) = admitted(&t).await;
        assert!(a.hello_received());
        let (_b, mut b_rx) = admitted(&t).await;
        let (_c, mut c_rx) = admitted(&t).await;
        // b is still in hello and older than c: it goes, a (mid-handshake) stays.
        assert_eq!(b_rx.try_recv(), Ok(CloseReason::Handshakes));
        assert!(a_rx.try_recv().is_err());
        assert!(c_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn the_new_connection_is_never_its_own_victim() {
        let t = table(100, 1);
        let (mut a, mut a_rx) = admitted(&t).await;
        assert!(a.hello_received());
        let (_b, mut b_rx) = admitted(&t).await;
        // b is the only one in hello; the oldest handshake goes instead.
        assert_eq!(a_rx.try_recv(), Ok(CloseReason::Handshakes));
        assert!(b_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn at_the_cap_reserve_sheds_an_idle_connection_and_waits_for_its_close() {
        let t = table(1, 10);
        let (mut a, a_rx) = admitted(&t).await;
        assert!(a.hello_received());
        let activity = Arc::new(Activity::new());
        assert!(a.serving(Some(activity)));
        let t2 = t.clone();
        let next = tokio::spawn(async move { t2.reserve().await });
        tokio::task::yield_now().await;
        assert_eq!(a_rx.await, Ok(CloseReason::Capacity));
        assert!(!next.is_finished());
        drop(a);
        let slot = next.await.unwrap();
        assert_eq!(t.open(), 1);
        drop(slot);
        assert_eq!(t.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_a_busy_connection_is_not_closed_and_reserve_waits() {
        let t = table(1, 10);
        let (mut a, mut a_rx) = admitted(&t).await;
        assert!(a.hello_received());
        let activity = Arc::new(Activity::new());
        activity.request_started();
        assert!(a.serving(Some(activity.clone())));
        let t2 = t.clone();
        let next = tokio::spawn(async move { t2.reserve().await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!next.is_finished(), "reserve must wait at the cap");
        assert!(a_rx.try_recv().is_err(), "a busy connection is never shed");
        drop(a);
        next.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn for_room_an_idle_connection_goes_before_a_young_handshake_and_after_an_old_one() {
        let t = table(100, 100);
        let (mut idle, mut idle_rx) = admitted(&t).await;
        assert!(idle.hello_received());
        assert!(idle.serving(Some(Arc::new(Activity::new()))));
        let (_young, mut young_rx) = admitted(&t).await;
        assert!(lock(&t.inner).shed_for_room(CloseReason::Capacity));
        assert_eq!(idle_rx.try_recv(), Ok(CloseReason::Capacity));
        assert!(
            young_rx.try_recv().is_err(),
            "a young handshake is likely a good client"
        );

        let (mut idle2, mut idle2_rx) = admitted(&t).await;
        assert!(idle2.hello_received());
        assert!(idle2.serving(Some(Arc::new(Activity::new()))));
        tokio::time::advance(YOUNG * 2).await;
        assert!(lock(&t.inner).shed_for_room(CloseReason::Capacity));
        assert_eq!(
            young_rx.try_recv(),
            Ok(CloseReason::Capacity),
            "now old: it goes first"
        );
        assert!(idle2_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn the_handshake_bound_never_closes_an_idle_connection() {
        let t = table(100, 1);
        let (mut idle, mut idle_rx) = admitted(&t).await;
        assert!(idle.hello_received());
        assert!(idle.serving(Some(Arc::new(Activity::new()))));
        let (_a, mut a_rx) = admitted(&t).await;
        let (_b, mut b_rx) = admitted(&t).await;
        assert_eq!(a_rx.try_recv(), Ok(CloseReason::Handshakes));
        assert!(b_rx.try_recv().is_err());
        assert!(
            idle_rx.try_recv().is_err(),
            "closing it would not lower the handshake count"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_with_only_young_handshakes_reserve_retries_once_they_age() {
        let t = table(1, 10);
        let (_young, mut young_rx) = admitted(&t).await;
        let t2 = t.clone();
        let next = tokio::spawn(async move { t2.reserve().await });
        tokio::time::sleep(YOUNG / 2).await;
        assert!(young_rx.try_recv().is_err(), "too young to judge");
        tokio::time::sleep(YOUNG).await;
        assert_eq!(
            young_rx.try_recv(),
            Ok(CloseReason::Capacity),
            "aged: asked without a wake-up"
        );
        assert!(!next.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_handshake_that_began_late_does_not_hide_an_older_one() {
        let t = table(100, 100);
        let (mut early, _early_rx) = admitted(&t).await;
        let (mut stalled, mut stalled_rx) = admitted(&t).await;
        assert!(stalled.hello_received());
        tokio::time::advance(YOUNG * 4).await;
        // Accepted first, but its ClientHello only now: the newest in `handshake`.
        assert!(early.hello_received());
        assert!(lock(&t.inner).shed_for_room(CloseReason::Capacity));
        assert_eq!(stalled_rx.try_recv(), Ok(CloseReason::Capacity));
    }

    #[tokio::test]
    async fn after_close_all_nothing_is_admitted() {
        let t = table(10, 10);
        t.close_all(CloseReason::Shutdown);
        let mut slot = t.reserve().await;
        assert_eq!(slot.admit(IP).err(), Some(Refused::ShuttingDown));
    }

    #[tokio::test]
    async fn a_connection_that_no_longer_listens_is_skipped_for_the_next() {
        let t = table(100, 100);
        let (mut upgraded, upgraded_rx) = admitted(&t).await;
        assert!(upgraded.hello_received());
        assert!(upgraded.serving(Some(Arc::new(Activity::new()))));
        drop(upgraded_rx); // as after an upgrade to a WebSocket
        let (mut idle, mut idle_rx) = admitted(&t).await;
        assert!(idle.hello_received());
        assert!(idle.serving(Some(Arc::new(Activity::new()))));
        assert!(lock(&t.inner).shed_for_room(CloseReason::Capacity));
        assert_eq!(idle_rx.try_recv(), Ok(CloseReason::Capacity));
    }

    #[tokio::test]
    async fn lingering_closes_are_bounded_in_number() {
        let t = table(10_000, 10_000);
        let mut held = Vec::new();
        for _ in 0..=MAX_LINGERING {
            let (mut slot, rx) = admitted(&t).await;
            assert!(slot.lingering());
            held.push((slot, rx));
        }
        assert_eq!(held[0].1.try_recv(), Ok(CloseReason::Capacity));
        assert!(held[1].1.try_recv().is_err());
    }

    #[tokio::test]
    async fn connections_handed_to_accept_are_never_shed() {
        let t = table(1, 10);
        let (mut a, mut a_rx) = admitted(&t).await;
        assert!(a.hello_received());
        assert!(a.serving(None));
        assert_eq!(
            t.shed_for_descriptors_among(10, std::slice::from_ref(&t)),
            0
        );
        assert!(a_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_shed_connection_cannot_advance() {
        let t = table(100, 1);
        let (mut a, _a_rx) = admitted(&t).await;
        let (_b, _b_rx) = admitted(&t).await;
        assert!(
            !a.hello_received(),
            "a was shed: it must stop, not carry on"
        );
    }

    #[tokio::test]
    async fn the_per_address_cap_refuses_the_next_connection_and_frees_on_close() {
        let t = ConnTable::unregistered(100, 100, Some(2));
        let (a, _ra) = admitted(&t).await;
        let (_b, _rb) = admitted(&t).await;
        let mut c = t.reserve().await;
        assert!(c.admit(IP).is_err());
        drop(c);
        drop(a);
        let mut d = t.reserve().await;
        assert!(d.admit(IP).is_ok());
        let mut other = t.reserve().await;
        assert!(other
            .admit(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)))
            .is_ok());
    }

    #[tokio::test]
    async fn descriptor_shedding_reaches_other_listeners() {
        let starving = table(10, 10);
        let hoarding = table(10, 10);
        let (mut a, mut a_rx) = admitted(&hoarding).await;
        assert!(a.hello_received());
        assert!(a.serving(Some(Arc::new(Activity::new()))));
        let both = [starving.clone(), hoarding.clone()];
        assert_eq!(starving.shed_for_descriptors_among(4, &both), 1);
        assert_eq!(a_rx.try_recv(), Ok(CloseReason::Descriptors));
    }

    #[tokio::test]
    async fn close_all_signals_every_phase() {
        let t = table(10, 10);
        let (_h, mut h_rx) = admitted(&t).await;
        let (mut s, mut s_rx) = admitted(&t).await;
        assert!(s.hello_received());
        assert!(s.serving(Some(Arc::new(Activity::new()))));
        t.close_all(CloseReason::Shutdown);
        assert_eq!(h_rx.try_recv(), Ok(CloseReason::Shutdown));
        assert_eq!(s_rx.try_recv(), Ok(CloseReason::Shutdown));
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            max_age: Some(Duration::from_secs(3600)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_must_send_its_first_request_within_the_header_timeout() {
        let a = Activity::new();
        let (at, why) = a.next_deadline(&timeouts(), Instant::now());
        assert_eq!(why, Expiry::FirstRequest);
        assert_eq!(at, a.started + Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_gets_the_idle_deadline_until_a_byte_arrives() {
        let a = Activity::new();
        a.request_started();
        tokio::time::advance(Duration::from_secs(3)).await;
        a.request_finished();
        let (at, why) = a.next_deadline(&timeouts(), Instant::now());
        assert_eq!(
            (at, why),
            (a.started + Duration::from_secs(63), Expiry::Idle)
        );
        tokio::time::advance(Duration::from_secs(20)).await;
        a.bytes_received();
        let (at, why) = a.next_deadline(&timeouts(), Instant::now());
        assert_eq!(
            (at, why),
            (a.started + Duration::from_secs(33), Expiry::Header)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_has_only_its_age_and_a_recheck() {
        let a = Activity::new();
        a.request_started();
        let now = Instant::now();
        assert_eq!(
            a.next_deadline(&timeouts(), now),
            (now + Duration::from_secs(60), Expiry::Recheck)
        );
        let no_idle = Timeouts {
            idle: Duration::from_secs(7200),
            ..timeouts()
        };
        assert_eq!(
            a.next_deadline(&no_idle, now),
            (a.started + Duration::from_secs(3600), Expiry::MaxAge)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_certificate_end_comes_before_a_later_age_even_while_busy() {
        let ends = Instant::now() + Duration::from_secs(90);
        let wall = std::time::SystemTime::now() + Duration::from_secs(90);
        let a = Activity::new().ending_at(Some((ends, wall)));
        a.request_started();
        let no_idle = Timeouts {
            idle: Duration::from_secs(7200),
            ..timeouts()
        };
        assert_eq!(
            a.next_deadline(&no_idle, Instant::now()),
            (ends, Expiry::CertificateEnded)
        );
        a.request_finished();
        assert_eq!(
            a.next_deadline(&no_idle, Instant::now()),
            (ends, Expiry::CertificateEnded)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_certificate_ended_by_the_wall_clock_ends_the_connection_now() {
        // The monotonic end is an hour away, but the wall clock says the certificate has ended
        // (the clock was stepped forward, or the host slept).
        let wall_end = std::time::SystemTime::now() - Duration::from_secs(1);
        let a =
            Activity::new().ending_at(Some((Instant::now() + Duration::from_secs(3600), wall_end)));
        let now = Instant::now();
        assert_eq!(
            a.next_deadline(&timeouts(), now),
            (now, Expiry::CertificateEnded)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_age_still_comes_first_when_the_certificate_lasts() {
        let far = std::time::SystemTime::now() + Duration::from_secs(7200);
        let a = Activity::new().ending_at(Some((Instant::now() + Duration::from_secs(7200), far)));
        a.request_started();
        let no_idle = Timeouts {
            idle: Duration::from_secs(7200),
            ..timeouts()
        };
        assert_eq!(
            a.next_deadline(&no_idle, Instant::now()),
            (a.started + Duration::from_secs(3600), Expiry::MaxAge)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_age_means_no_age_deadline_rather_than_an_overflow() {
        let a = Activity::new();
        a.request_started();
        let t = Timeouts {
            max_age: Some(Duration::MAX),
            idle: Duration::MAX,
            ..timeouts()
        };
        let now = Instant::now();
        let (at, _) = a.next_deadline(&t, now);
        assert!(at > now + Duration::from_secs(300 * 24 * 3600));
    }
}
