//! `cargo xtask bench` flags, and the sizes and durations they imply.

use std::time::Duration;

use anyhow::bail;

/// Every scenario, in the order a run performs them.
pub const SCENARIOS: [&str; 7] = [
    "ingest", "list", "thread", "actions", "send", "fanout", "limits",
];

/// Dataset size: named for the busy workspace's message count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// 100,000 conversations, 1,000,000 messages.
    M1,
    /// 10,000 conversations, 100,000 messages.
    K100,
    /// 1,000 conversations, 10,000 messages.
    K10,
}

impl Scale {
    /// `1m`, `100k` or `10k`.
    pub fn name(self) -> &'static str {
        match self {
            Self::M1 => "1m",
            Self::K100 => "100k",
            Self::K10 => "10k",
        }
    }

    /// Conversations (and contacts) of the busy workspace.
    pub fn busy_conversations(self) -> u32 {
        match self {
            Self::M1 => 100_000,
            Self::K100 => 10_000,
            Self::K10 => 1_000,
        }
    }

    /// Messages of the busy workspace.
    pub fn busy_messages(self) -> u64 {
        u64::from(self.busy_conversations()) * 10
    }

    /// Small workspaces beside the busy one.
    pub fn small_workspaces(self) -> usize {
        99
    }

    /// Conversations of each small workspace.
    pub fn small_conversations(self) -> u32 {
        match self {
            Self::M1 => 100,
            Self::K100 => 30,
            Self::K10 => 10,
        }
    }

    /// Messages of each small workspace.
    pub fn small_messages(self) -> u64 {
        u64::from(self.small_conversations()) * 5
    }

    /// Admins that send replies: sends are limited to 30 a minute per user, and the send
    /// scenario must never hit that limit.
    pub fn senders(self) -> usize {
        400
    }
}

/// Parsed flags.
#[derive(Clone, Debug)]
pub struct Options {
    /// `sqlite` or a `postgres://` server URL.
    pub db: String,
    /// Dataset size.
    pub scale: Scale,
    /// The CI smoke version: small dataset, short scenarios, same checks.
    pub quick: bool,
    /// Scenarios to run, in run order.
    pub scenarios: Vec<&'static str>,
    /// Keep the run's PostgreSQL database afterwards, to inspect plans on the seeded data.
    pub keep: bool,
}

/// The usage line.
pub const USAGE: &str = "usage: cargo xtask bench [--db sqlite|postgres://...] [--scale 1m|100k|10k] \
     [--quick] [--scenarios ingest,list,thread,actions,send,fanout,limits] [--keep]";

impl Options {
    /// Parses the arguments after `bench`.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut db = "sqlite".to_owned();
        let mut scale = None;
        let mut quick = false;
        let mut keep = false;
        let mut scenarios: Vec<&'static str> = SCENARIOS.to_vec();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || -> anyhow::Result<String> {
                match inline.clone().or_else(|| iter.next().cloned()) {
                    Some(v) => Ok(v),
                    None => bail!("{flag} needs a value\n{USAGE}"),
                }
            };
            match flag {
                "--db" => db = value()?,
                "--scale" => {
                    scale = Some(match value()?.as_str() {
                        "1m" => Scale::M1,
                        "100k" => Scale::K100,
                        "10k" => Scale::K10,
                        other => bail!("unknown scale {other:?}\n{USAGE}"),
                    });
                }
                "--quick" => quick = true,
                "--keep" => keep = true,
                "--scenarios" => {
                    let wanted = value()?;
                    let mut picked = Vec::new();
                    for name in wanted.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        match SCENARIOS.iter().find(|s| **s == name) {
                            Some(s) => picked.push(*s),
                            None => bail!("unknown scenario {name:?}\n{USAGE}"),
                        }
                    }
                    // Keep run order whatever order they were named in.
                    scenarios = SCENARIOS
                        .iter()
                        .copied()
                        .filter(|s| picked.contains(s))
                        .collect();
                }
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown flag {other:?}\n{USAGE}"),
            }
        }
        Ok(Self {
            db,
            scale: scale.unwrap_or(if quick { Scale::K10 } else { Scale::M1 }),
            quick,
            scenarios,
            keep,
        })
    }

    /// Length of one open-loop latency measurement.
    pub fn open_duration(&self) -> Duration {
        if self.quick {
            Duration::from_millis(1_000)
        } else {
            Duration::from_secs(8)
        }
    }

    /// Length of one closed-loop step.
    pub fn closed_duration(&self) -> Duration {
        if self.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3)
        }
    }

    /// Whether the database is PostgreSQL.
    pub fn postgres(&self) -> bool {
        self.db != "sqlite"
    }
}
