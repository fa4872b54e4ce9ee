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

/// The sending side of the writer thread.
pub struct FlowSink {
    tx: Option<SyncSender<Vec<Flow>>>,
    batch: Vec<Flow>,
    handle: Option<JoinHandle<io::Result<()>>>,
}

impl FlowSink {
    /// Starts the writer thread.
    pub fn spawn(
        format: Format,
        nets: LocalNets,
        rules: Arc<Rules>,
        out: Box<dyn Write + Send>,
    ) -> FlowSink {
        let (tx, rx) = sync_channel::<Vec<Flow>>(IN_FLIGHT);
        let handle = std::thread::Builder::new()
            .name("setten-output".into())
            .spawn(move || {
                let cx = RecordCx {
                    nets: &nets,
                    rules: &rules,
                };
                let mut out = io::BufWriter::with_capacity(1 << 16, out);
                let mut table = TableSink::default();
                let mut error: Option<io::Error> = None;
                let mut line = Vec::with_capacity(2048);
                for mut batch in rx {
                    if error.is_some() {
                        continue;
                    }
                    for f in &mut batch {
                        f.resolve(&rules);
                        let view = FlowView { flow: f, cx: &cx };
                        match format {
                            Format::Table => table.add(&view),
                            Format::Jsonl => {
                                line.clear();
                                view.write_json(&mut line);
                                line.push(b'\n');
                                if let Err(e) = out.write_all(&line) {
                                    error = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                }
                if let Some(e) = error {
                    return Err(e);
                }
                if format == Format::Table {
                    table.write(&mut out)?;
                }
                out.flush()
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

    /// Sends what is left, waits for the writer and returns its result.
    pub fn finish(mut self) -> io::Result<()> {
        if !self.batch.is_empty() {
            self.send();
        }
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the output thread panicked")),
            None => Ok(()),
        }
    }
}
