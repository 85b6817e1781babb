//! [`RequestBody`]: the request body `serve` hands to the app, which counts the bytes the app has
//! read against the connection's and the listener's budgets, and times out a body that stops
//! arriving. See [`limits`](crate::limits) ("Request bytes the app holds").

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use hyper::body::{Bytes, Incoming};
use tokio::time::{Instant, Sleep};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held (set and vector operations).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A budget of request-body bytes held by the app: one per connection and one per listener.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
    /// The bodies holding bytes, by age: the oldest always proceeds, so the budget cannot
    /// deadlock (every body waiting for one another to release).
    holders: Mutex<BTreeSet<u64>>,
    waiters: Mutex<Vec<Waker>>,
    /// The listener's budget numbers its bodies (ages are compared across connections).
    next_seq: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            limit,
            holders: Mutex::default(),
            waiters: Mutex::default(),
            next_seq: AtomicU64::new(0),
        }
    }

    fn has_room(&self, seq: u64) -> bool {
        self.used.load(Relaxed) < self.limit || lock(&self.holders).first() == Some(&seq)
    }

    /// Whether `seq` may read more; if not, its waker is registered.
    fn admit(&self, seq: u64, waker: &Waker) -> bool {
        if self.has_room(seq) {
            return true;
        }
        lock(&self.waiters).push(waker.clone());
        // Released between the check and the registration? Then the release saw no waiter.
        self.has_room(seq)
    }

    fn hold(&self, seq: u64, first: bool, n: usize) {
        if first {
            lock(&self.holders).insert(seq);
        }
        self.used.fetch_add(n, Relaxed);
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Relaxed);
            self.wake();
        }
    }

    fn leave(&self, seq: u64) {
        if lock(&self.holders).remove(&seq) {
            // A new oldest may now proceed.
            self.wake();
        }
    }

    fn wake(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for w in waiters {
            w.wake();
        }
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Relaxed)
    }
}

/// How a body's held bytes are released.
#[derive(Debug)]
enum Counting {
    /// Everything read counts until the body ends, at most `cap` bytes (so that a body streamed
    /// through, such as an upload to disk, pins at most one connection's budget).
    Whole { cap: usize },
    /// gRPC length-prefixed messages: a complete message stops counting when the next one
    /// begins (tonic yields each message before it reads the next).
    Grpc(Box<GrpcFrames>),
}

/// Where a gRPC body is in its length-prefixed messages (1-byte flag, 4-byte big-endian length).
#[derive(Debug, Default)]
struct GrpcFrames {
    header: [u8; 5],
    header_len: usize,
    message_left: u64,
    /// Held bytes of messages already complete, and of the current one.
    complete: usize,
    current: usize,
}

impl GrpcFrames {
    /// Walks `data`; returns how many held bytes to release (messages complete before a new one
    /// began).
    fn advance(&mut self, mut data: &[u8]) -> usize {
        let mut release = 0;
        while !data.is_empty() {
            if self.header_len < 5 {
                if self.header_len == 0 && self.complete > 0 {
                    release += std::mem::take(&mut self.complete);
                }
                let take = (5 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                self.current += take;
                data = &data[take..];
                if self.header_len == 5 {
                    let len = [
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ];
                    self.message_left = u64::from(u32::from_be_bytes(len));
                    if self.message_left == 0 {
                        self.end_message();
                    }
                }
            } else {
                let take = usize::try_from(self.message_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.message_left -= take as u64;
                self.current += take;
                data = &data[take..];
                if self.message_left == 0 {
                    self.end_message();
                }
            }
        }
        release
    }

    fn end_message(&mut self) {
        self.complete += std::mem::take(&mut self.current);
        self.header_len = 0;
    }
}

/// A connection's budget and its listener's, shared by the connection's bodies.
#[derive(Debug)]
pub(crate) struct Budgets {
    pub(crate) connection: Budget,
    pub(crate) listener: Arc<Budget>,
}

/// One body's account with its two budgets.
#[derive(Debug)]
pub(crate) struct Account {
    budgets: Arc<Budgets>,
    /// Its age among the listener's bodies, from its first held byte (never-holding bodies, such
    /// as a GET's, cost no shared counter).
    seq: Option<u64>,
    held: usize,
    counting: Counting,
}

impl Account {
    /// An account for a new request body. `grpc`: an HTTP/2 request with a gRPC content type.
    pub(crate) fn new(budgets: Arc<Budgets>, grpc: bool) -> Account {
        let counting = if grpc {
            Counting::Grpc(Box::default())
        } else {
            Counting::Whole {
                cap: budgets.connection.limit,
            }
        };
        Account {
            budgets,
            seq: None,
            held: 0,
            counting,
        }
    }

    /// Whether the next read may add to the budgets (a `Whole` body at its cap adds nothing).
    fn counts_more(&self) -> bool {
        match self.counting {
            Counting::Whole { cap } => self.held < cap,
            Counting::Grpc(_) => true,
        }
    }

    /// Whether a message has begun and not ended: for gRPC, between a message's first byte and
    /// its last; for other bodies, until the body ends. Only then does a silent client hold
    /// something up: a gRPC stream between messages may rightly stay quiet for hours.
    fn mid_message(&self) -> bool {
        match &self.counting {
            Counting::Whole { .. } => true,
            Counting::Grpc(frames) => frames.header_len > 0,
        }
    }

    fn admit(&self, waker: &Waker) -> bool {
        !self.counts_more() || {
            // A body that holds nothing yet is never the oldest holder.
            let seq = self.seq.unwrap_or(u64::MAX);
            self.budgets.connection.admit(seq, waker) && self.budgets.listener.admit(seq, waker)
        }
    }

    fn read(&mut self, data: &[u8]) {
        let first = self.held == 0;
        let seq = *self
            .seq
            .get_or_insert_with(|| self.budgets.listener.next_seq.fetch_add(1, Relaxed));
        let (add, release) = match &mut self.counting {
            Counting::Whole { cap } => (data.len().min(cap.saturating_sub(self.held)), 0),
            Counting::Grpc(frames) => (data.len(), frames.advance(data)),
        };
        if add > 0 {
            self.held += add;
            self.budgets.connection.hold(seq, first, add);
            self.budgets.listener.hold(seq, first, add);
        }
        if release > 0 {
            self.held -= release;
            self.budgets.connection.release(release);
            self.budgets.listener.release(release);
        }
        if self.held == 0 && (add > 0 || release > 0) {
            self.budgets.connection.leave(seq);
            self.budgets.listener.leave(seq);
        }
    }

    fn release_all(&mut self) {
        let held = std::mem::take(&mut self.held);
        if let Counting::Grpc(frames) = &mut self.counting {
            **frames = GrpcFrames::default();
        }
        // Holding nothing, it has already left the holders (or never joined them).
        if let (true, Some(seq)) = (held > 0, self.seq) {
            self.budgets.connection.release(held);
            self.budgets.listener.release(held);
            self.budgets.connection.leave(seq);
            self.budgets.listener.leave(seq);
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// The request body of every request served by [`serve`](crate::serve): hyper's body, with the
/// app's reads counted against the buffered-bytes budgets and a timeout for a body that stops
/// arriving (see [`limits`](crate::limits)).
///
/// Any service that takes a generic `http_body::Body` (an axum `Router`, a tonic `Routes`, tower
/// middleware) takes it as it is.
pub struct RequestBody {
    inner: Incoming,
    account: Option<Account>,
    timeout: Duration,
    /// Armed while the app waits for bytes that have not arrived.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    done: bool,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, account: Account, timeout: Duration) -> RequestBody {
        RequestBody {
            inner,
            account: Some(account),
            timeout,
            timer: None,
            waiting: false,
            done: false,
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.timer = None;
        if let Some(mut account) = self.account.take() {
            account.release_all();
        }
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("account", &self.account)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why reading a [`RequestBody`] failed.
#[derive(Debug)]
pub struct RequestBodyError(ErrorKind);

#[derive(Debug)]
enum ErrorKind {
    Hyper(hyper::Error),
    Timeout(Duration),
}

impl RequestBodyError {
    /// Whether the body stopped arriving for longer than the request-body timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self.0, ErrorKind::Timeout(_))
    }
}

impl fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ErrorKind::Hyper(e) => write!(f, "reading the request body: {e}"),
            ErrorKind::Timeout(t) => write!(
                f,
                "the request body stopped arriving for {t:?} (request_body_timeout)"
            ),
        }
    }
}

impl std::error::Error for RequestBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            ErrorKind::Hyper(e) => Some(e),
            ErrorKind::Timeout(_) => None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        // Our own wait for budget is not the client's delay: the timer is not armed for it.
        if let Some(account) = &this.account {
            if !account.admit(cx.waker()) {
                return Poll::Pending;
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if !this.account.as_ref().is_some_and(Account::mid_message) {
                    // Between gRPC messages: no timeout.
                    this.waiting = false;
                    return Poll::Pending;
                }
                if !this.waiting {
                    this.waiting = true;
                    let at = Instant::now()
                        .checked_add(this.timeout)
                        .unwrap_or_else(far_future);
                    match &mut this.timer {
                        Some(t) => t.as_mut().reset(at),
                        None => this.timer = Some(Box::pin(tokio::time::sleep_until(at))),
                    }
                }
                if let Some(timer) = &mut this.timer {
                    if timer.as_mut().poll(cx).is_ready() {
                        let timeout = this.timeout;
                        this.finish();
                        log_body_timeout(timeout);
                        return Poll::Ready(Some(Err(RequestBodyError(ErrorKind::Timeout(
                            timeout,
                        )))));
                    }
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                if let (Some(data), Some(account)) = (frame.data_ref(), &mut this.account) {
                    account.read(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                Poll::Ready(Some(Err(RequestBodyError(ErrorKind::Hyper(e)))))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// "Never" for a timer: about a year from now.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

fn log_body_timeout(timeout: Duration) {
    static LIMIT: crate::logging::Limiter = crate::logging::Limiter::new();
    if let Some(suppressed) = LIMIT.admit() {
        tracing::debug!(
            target: "mtls_tower::serve",
            suppressed,
            ?timeout,
            "request body stopped arriving; failing the read"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's budgets, and its listener's budget to look at.
    fn budgets(conn: usize, total: usize) -> (Arc<Budgets>, Arc<Budget>) {
        let listener = Arc::new(Budget::new(total));
        (on(conn, &listener), listener)
    }

    fn on(conn: usize, listener: &Arc<Budget>) -> Arc<Budgets> {
        Arc::new(Budgets {
            connection: Budget::new(conn),
            listener: listener.clone(),
        })
    }

    fn grpc_message(len: u32) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn whole_bodies_hold_what_they_read_until_released() {
        let (c, l) = budgets(1000, 10_000);
        let mut a = Account::new(c.clone(), false);
        a.read(&[0; 300]);
        a.read(&[0; 200]);
        assert_eq!((c.connection.used(), l.used()), (500, 500));
        drop(a);
        assert_eq!((c.connection.used(), l.used()), (0, 0));
    }

    #[test]
    fn a_whole_body_counts_at_most_the_connection_budget() {
        let (c, l) = budgets(1000, 10_000);
        let mut a = Account::new(c.clone(), false);
        for _ in 0..10 {
            a.read(&[0; 400]);
        }
        assert_eq!(l.used(), 1000);
        assert!(
            !a.counts_more(),
            "at its cap, a streamed body no longer needs budget"
        );
    }

    #[test]
    fn a_grpc_message_is_released_when_the_next_one_begins() {
        let (c, l) = budgets(1 << 20, 1 << 20);
        let mut a = Account::new(c.clone(), true);
        a.read(&grpc_message(100));
        assert_eq!(
            l.used(),
            105,
            "a complete unary message is held until the body ends"
        );
        let second = grpc_message(50);
        a.read(&second[..3]);
        assert_eq!(l.used(), 3, "the first message was handed over");
        a.read(&second[3..]);
        assert_eq!(l.used(), 55);
        drop(a);
        assert_eq!((c.connection.used(), l.used()), (0, 0));
    }

    #[test]
    fn grpc_headers_split_across_reads_are_parsed() {
        let (c, l) = budgets(1 << 20, 1 << 20);
        let mut a = Account::new(c, true);
        let msg = grpc_message(10);
        for byte in &msg {
            a.read(std::slice::from_ref(byte));
        }
        assert_eq!(l.used(), 15);
        a.read(&grpc_message(0));
        assert_eq!(l.used(), 5, "an empty message is a message too");
    }

    #[test]
    fn an_unfinished_grpc_message_stays_held() {
        let (c, l) = budgets(1 << 30, 1 << 30);
        let mut a = Account::new(c, true);
        let msg = grpc_message(4 << 20);
        a.read(&msg[..msg.len() - 1]);
        assert_eq!(l.used(), msg.len() - 1);
    }

    #[test]
    fn a_grpc_body_is_mid_message_only_between_a_messages_first_and_last_byte() {
        let (c, _) = budgets(1 << 20, 1 << 20);
        let mut a = Account::new(c.clone(), true);
        assert!(!a.mid_message(), "nothing begun: a stream may stay quiet");
        let msg = grpc_message(10);
        a.read(&msg[..3]);
        assert!(a.mid_message(), "inside the length prefix");
        a.read(&msg[3..9]);
        assert!(a.mid_message(), "inside the message");
        a.read(&msg[9..]);
        assert!(!a.mid_message(), "complete: quiet until the next is fine");
        assert!(
            Account::new(c, false).mid_message(),
            "a whole body is one message"
        );
    }

    #[test]
    fn over_budget_only_the_oldest_holder_proceeds() {
        let (c, _) = budgets(100, 100);
        let waker = Waker::noop();
        let mut old = Account::new(c.clone(), false);
        let mut young = Account::new(c.clone(), false);
        old.read(&[0; 60]);
        young.read(&[0; 60]);
        assert!(old.admit(waker), "the oldest always proceeds");
        assert!(!young.admit(waker), "over budget, a younger body waits");
        drop(old);
        assert!(young.admit(waker), "released: room again");
    }

    #[test]
    fn a_new_body_waits_while_the_listener_budget_is_spent_by_other_connections() {
        let l = Arc::new(Budget::new(100));
        let (c1, c2) = (on(1000, &l), on(1000, &l));
        let mut greedy = Account::new(c1, true);
        greedy.read(&grpc_message(4 << 20)[..150]);
        let newcomer = Account::new(c2, true);
        assert!(!newcomer.admit(Waker::noop()));
        drop(greedy);
        assert!(newcomer.admit(Waker::noop()));
    }
}
