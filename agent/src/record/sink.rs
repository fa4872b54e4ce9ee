//! Where finished flows go: a writer thread that renders them (JSON Lines or the table)
//! while the packet path goes on with the next packets. Flows travel in batches over a
//! bounded channel, so memory stays bounded when the output is slow; a failed write
//! (closed pipe, full disk) is remembered and reported at the end, and the remaining
//! flows are drained without blocking the packet path.
//!
//! For JSON Lines the packet path helps when the writer falls behind (the flows still
//! open at the end of a capture all end at once): a batch that finds the channel full is
//! rendered on the sending thread and travels as finished lines, in its place in the
//! order, so both threads render and the output stays the same.

use super::table::TableSink;
use super::{FlowView, LocalNets, RecordCx};
use crate::flow::Flow;
use crate::rules::Rules;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Flows per batch sent to the writer.
pub const BATCH: usize = 256;
/// Batches in flight before the packet path waits for the writer.
pub const IN_FLIGHT: usize = 4;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per flow and line.
    Jsonl,
    /// The human-readable summary, written at the end.
    Table,
}

/// What the output thread does with each finished flow.
pub trait Consumer: Send + 'static {
    /// What it hands back at the end.
    type Output: Send + 'static;
    /// Takes one flow (already resolved). An error stops further calls; the remaining
    /// flows are drained without blocking the packet path.
    fn flow(&mut self, v: &FlowView<'_>) -> io::Result<()>;
    /// Takes lines already rendered by [`jsonl_line`] on the sending thread, in their
    /// place in the order. Only a consumer that renders JSON Lines is sent any.
    fn lines(&mut self, lines: &[u8]) -> io::Result<()> {
        let _ = lines;
        Err(io::Error::other("this output does not take rendered lines"))
    }
    /// The end of input.
    fn finish(self) -> io::Result<Self::Output>;
}

/// Renders flows as JSON Lines or the table.
pub struct Writer {
    format: Format,
    out: io::BufWriter<Box<dyn Write + Send>>,
    table: TableSink,
    line: Vec<u8>,
}

impl Writer {
    /// A writer of the given format.
    pub fn new(format: Format, out: Box<dyn Write + Send>) -> Writer {
        Writer {
            format,
            out: io::BufWriter::with_capacity(1 << 16, out),
            table: TableSink::default(),
            line: Vec::with_capacity(2048),
        }
    }
}

impl Consumer for Writer {
    type Output = ();

    fn flow(&mut self, view: &FlowView<'_>) -> io::Result<()> {
        match self.format {
            Format::Table => self.table.add(view),
            Format::Jsonl => {
                self.line.clear();
                view.write_json(&mut self.line);
                self.line.push(b'\n');
                self.out.write_all(&self.line)?;
            }
        }
        Ok(())
    }

    fn lines(&mut self, lines: &[u8]) -> io::Result<()> {
        self.out.write_all(lines)
    }

    fn finish(mut self) -> io::Result<()> {
        if self.format == Format::Table {
            self.table.write(&mut self.out)?;
        }
        self.out.flush()
    }
}

/// Renders one finished flow as a JSON line (its deferred classification work done
/// first), for a packet path that renders its own flows.
pub fn jsonl_line(f: &mut Flow, cx: &RecordCx<'_>, out: &mut Vec<u8>) {
    f.resolve(cx.rules);
    FlowView { flow: f, cx }.write_json(out);
    out.push(b'\n');
}

/// What travels to the output thread.
enum Msg {
    /// Flows for the output thread to resolve and render.
    Flows(Vec<Flow>),
    /// JSON Lines the sending thread rendered itself.
    Lines(Vec<u8>),
}

/// What the sending thread needs to render JSON Lines itself.
struct Helper {
    nets: LocalNets,
    rules: Arc<Rules>,
}

/// The sending side of the output thread.
pub struct FlowSink<O: Send + 'static = ()> {
    tx: Option<SyncSender<Msg>>,
    batch: Vec<Flow>,
    handle: Option<JoinHandle<io::Result<O>>>,
    /// Set for JSON Lines: renders a batch here when the writer is behind.
    helper: Option<Helper>,
    /// Batches rendered here so far.
    helped: usize,
}

impl FlowSink<()> {
    /// Starts a thread writing JSON Lines or the table.
    pub fn spawn(
        format: Format,
        nets: LocalNets,
        rules: Arc<Rules>,
        out: Box<dyn Write + Send>,
    ) -> FlowSink<()> {
        let helper = (format == Format::Jsonl).then(|| Helper {
            nets: nets.clone(),
            rules: rules.clone(),
        });
        let mut sink = FlowSink::with(Writer::new(format, out), nets, rules);
        if sink.tx.is_some() {
            sink.helper = helper;
        }
        sink
    }
}

impl<O: Send + 'static> FlowSink<O> {
    /// Starts the output thread with a consumer.
    pub fn with<C: Consumer<Output = O>>(
        mut consumer: C,
        nets: LocalNets,
        rules: Arc<Rules>,
    ) -> FlowSink<O> {
        let (tx, rx) = sync_channel::<Msg>(IN_FLIGHT);
        let handle = std::thread::Builder::new()
            .name("setten-output".into())
            .spawn(move || {
                let cx = RecordCx {
                    nets: &nets,
                    rules: &rules,
                };
                let mut error: Option<io::Error> = None;
                for msg in rx {
                    if error.is_some() {
                        continue;
                    }
                    match msg {
                        Msg::Flows(mut batch) => {
                            for f in &mut batch {
                                f.resolve(&rules);
                                let view = FlowView { flow: f, cx: &cx };
                                if let Err(e) = consumer.flow(&view) {
                                    error = Some(e);
                                    break;
                                }
                            }
                        }
                        Msg::Lines(lines) => error = consumer.lines(&lines).err(),
                    }
                }
                if let Some(e) = error {
                    return Err(e);
                }
                consumer.finish()
            });
        match handle {
            Ok(h) => FlowSink {
                tx: Some(tx),
                batch: Vec::with_capacity(BATCH),
                handle: Some(h),
                helper: None,
                helped: 0,
            },
            Err(e) => {
                // Could not start a thread: report it at finish.
                let h = std::thread::spawn(move || Err(e));
                FlowSink {
                    tx: None,
                    batch: Vec::new(),
                    handle: Some(h),
                    helper: None,
                    helped: 0,
                }
            }
        }
    }

    /// Queues a finished flow.
    pub fn push(&mut self, f: Flow) {
        self.batch.push(f);
        if self.batch.len() >= BATCH {
            self.send();
        }
    }

    fn send(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let Some(tx) = &self.tx else {
            return;
        };
        let msg = match (tx.try_send(Msg::Flows(batch)), &mut self.helper) {
            (Ok(()), _) => return,
            (Err(TrySendError::Disconnected(_)), _) => {
                self.tx = None;
                return;
            }
            (Err(TrySendError::Full(Msg::Flows(mut batch))), Some(h)) => {
                // The writer is behind: render this batch here.
                let cx = RecordCx {
                    nets: &h.nets,
                    rules: &h.rules,
                };
                let mut lines = Vec::with_capacity(BATCH * 1024);
                for f in &mut batch {
                    jsonl_line(f, &cx, &mut lines);
                }
                self.helped += 1;
                Msg::Lines(lines)
            }
            (Err(TrySendError::Full(msg)), _) => msg,
        };
        if tx.send(msg).is_err() {
            self.tx = None;
        }
    }

    /// Batches the sending thread has rendered itself because the writer was behind.
    pub fn helped(&self) -> usize {
        self.helped
    }

    /// Sends what is left, waits for the output thread and returns its result.
    pub fn finish(mut self) -> io::Result<O> {
        if !self.batch.is_empty() {
            self.send();
        }
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the output thread panicked")),
            None => Err(io::Error::other("the output thread is gone")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::Pipeline;
    use crate::capture::{LinkType, Packet};
    use crate::classify::Classifier;
    use std::sync::{Arc, Mutex};

    /// `n` UDP flows (raw IPv4, one datagram each, distinct source ports and hosts).
    fn flows(n: usize, rules: &Arc<Rules>) -> Vec<Flow> {
        let classifier = Classifier::new(rules.clone());
        let mut pipe = Pipeline::new(crate::flow::Config::default(), &classifier);
        let mut out = Vec::new();
        for i in 0..n {
            let [a, b] = ((i / 50_000) as u16).to_be_bytes();
            let sport = 1024 + (i % 50_000) as u16;
            let mut ip = vec![
                0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, a, b, 203, 0, 113, 7,
            ];
            ip.extend_from_slice(&sport.to_be_bytes());
            ip.extend_from_slice(&[0x30, 0x39, 0, 16, 0, 0]);
            ip.extend_from_slice(&(i as u64).to_be_bytes());
            let p = Packet {
                ts_us: 1_700_000_000_000_000 + i as u64,
                link: LinkType::RAW,
                data: &ip,
                orig_len: ip.len() as u32,
            };
            pipe.packet(&p, &mut |f| out.push(f));
        }
        pipe.finish(&mut |f| out.push(f));
        out
    }

    /// Output that holds its first write until the test lets it go.
    struct Held {
        gate: Option<std::sync::mpsc::Receiver<()>>,
        bytes: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Held {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if let Some(gate) = self.gate.take() {
                let _ = gate.recv();
            }
            self.bytes.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// While the writer is stuck, the sending thread renders batches itself; the lines
    /// come out complete and in the order the flows ended, as a lone writer writes them.
    #[test]
    fn a_slow_writer_gets_help_and_the_output_keeps_its_order() {
        let rules = Arc::new(Rules::defaults().unwrap());
        let nets = LocalNets::with(&[]);
        let n = BATCH * (IN_FLIGHT + 6) + 17;
        let cx = RecordCx {
            nets: &nets,
            rules: &rules,
        };
        let mut want = Vec::new();
        for mut f in flows(n, &rules) {
            jsonl_line(&mut f, &cx, &mut want);
        }
        assert_eq!(want.iter().filter(|&&b| b == b'\n').count(), n);

        let (open, gate) = std::sync::mpsc::channel();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let held = Held {
            gate: Some(gate),
            bytes: bytes.clone(),
        };
        let mut sink = FlowSink::spawn(Format::Jsonl, nets.clone(), rules.clone(), Box::new(held));
        // The writer holds its first batch, the channel takes IN_FLIGHT more; the batch
        // after them finds it full. Let the writer go once that batch is on its way.
        let pushed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let full_at = BATCH * (IN_FLIGHT + 2);
        let opener = {
            let pushed = pushed.clone();
            std::thread::spawn(move || {
                while pushed.load(std::sync::atomic::Ordering::SeqCst) < full_at {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
                let _ = open.send(());
            })
        };
        for f in flows(n, &rules) {
            pushed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            sink.push(f);
        }
        opener.join().unwrap();
        let helped = sink.helped();
        sink.finish().unwrap();
        let got = bytes.lock().unwrap().clone();
        assert!(helped >= 1);
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the output differs from a lone writer's");
    }
}
