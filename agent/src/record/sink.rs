//! Where finished flows go: a writer thread that renders them (JSON Lines or the table)
//! while the packet path goes on with the next packets. Flows travel in batches over a
//! bounded channel, so memory stays bounded when the output is slow; a failed write
//! (closed pipe, full disk) is remembered and reported at the end, and the remaining
//! flows are drained without blocking the packet path.

use super::table::TableSink;
use super::{FlowView, LocalNets, RecordCx};
use crate::flow::Flow;
use crate::rules::Rules;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, SyncSender};
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

/// The sending side of the output thread.
pub struct FlowSink<O: Send + 'static = ()> {
    tx: Option<SyncSender<Vec<Flow>>>,
    batch: Vec<Flow>,
    handle: Option<JoinHandle<io::Result<O>>>,
}

impl FlowSink<()> {
    /// Starts a thread writing JSON Lines or the table.
    pub fn spawn(
        format: Format,
        nets: LocalNets,
        rules: Arc<Rules>,
        out: Box<dyn Write + Send>,
    ) -> FlowSink<()> {
        FlowSink::with(Writer::new(format, out), nets, rules)
    }
}

impl<O: Send + 'static> FlowSink<O> {
    /// Starts the output thread with a consumer.
    pub fn with<C: Consumer<Output = O>>(
        mut consumer: C,
        nets: LocalNets,
        rules: Arc<Rules>,
    ) -> FlowSink<O> {
        let (tx, rx) = sync_channel::<Vec<Flow>>(IN_FLIGHT);
        let handle = std::thread::Builder::new()
            .name("setten-output".into())
            .spawn(move || {
                let cx = RecordCx {
                    nets: &nets,
                    rules: &rules,
                };
                let mut error: Option<io::Error> = None;
                for mut batch in rx {
                    if error.is_some() {
                        continue;
                    }
                    for f in &mut batch {
                        f.resolve(&rules);
                        let view = FlowView { flow: f, cx: &cx };
                        if let Err(e) = consumer.flow(&view) {
                            error = Some(e);
                            break;
                        }
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
            },
            Err(e) => {
                // Could not start a thread: report it at finish.
                let h = std::thread::spawn(move || Err(e));
                FlowSink {
                    tx: None,
                    batch: Vec::new(),
                    handle: Some(h),
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
        if let Some(tx) = &self.tx {
            if tx.send(batch).is_err() {
                self.tx = None;
            }
        }
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
