//! Usage from samples of a container's cumulative counters: CPU time used and the working set
//! held, sampled at an interval. Two consecutive samples make an interval of usage: the CPU
//! time between them (a counter that went down means the cgroup was made anew, and its value
//! is all new), the memory held integrated over the time between them (the trapezoid of the
//! two working sets), and the time itself. Quantities stay exact integers: nanoseconds of CPU,
//! byte-microseconds of memory, microseconds of running; pricing divides once per record.

/// One reading of a container's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Microseconds since the epoch.
    pub at_us: i64,
    /// CPU time used since the container started (cumulative), in nanoseconds.
    pub cpu_ns: u64,
    /// The working set (usage less inactive file pages), in bytes.
    pub memory_bytes: u64,
}

/// The usage of one container over the half-open interval [from, to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub from_us: i64,
    pub to_us: i64,
    /// CPU time used, in nanoseconds (1e9 = one vCPU-second).
    pub cpu_ns: u64,
    /// Memory held integrated over time, in byte-microseconds (2^30 × 1e6 = one GiB-second).
    pub memory_byte_us: u128,
    /// How long it ran, in microseconds (1e6 = one instance-second).
    pub running_us: i64,
}

/// The usage between two consecutive samples; None when they are not in time order.
pub fn between(prev: &Sample, cur: &Sample) -> Option<Usage> {
    let dt = cur.at_us.checked_sub(prev.at_us).filter(|d| *d > 0)?;
    let cpu_ns = if cur.cpu_ns >= prev.cpu_ns {
        cur.cpu_ns - prev.cpu_ns
    } else {
        // The counter started again: the container's cgroup was made anew since.
        cur.cpu_ns
    };
    let sum = u128::from(prev.memory_bytes) + u128::from(cur.memory_bytes);
    Some(Usage {
        from_us: prev.at_us,
        to_us: cur.at_us,
        cpu_ns,
        memory_byte_us: sum * dt as u128 / 2,
        running_us: dt,
    })
}

/// The usage from a container's start to its first sample: all the CPU time of the counter,
/// and the first working set held since the start (the best reading there is of it).
pub fn since_start(started_us: i64, first: &Sample) -> Option<Usage> {
    let dt = first.at_us.checked_sub(started_us).filter(|d| *d > 0)?;
    Some(Usage {
        from_us: started_us,
        to_us: first.at_us,
        cpu_ns: first.cpu_ns,
        memory_byte_us: u128::from(first.memory_bytes) * dt as u128,
        running_us: dt,
    })
}

/// The usage from the last sample of a container that stopped to the moment it finished: the
/// interval in flight closes at the finish time. A stopped container has no more counters to
/// read, so its CPU time after the last sample is the one reading missed (`cpu_ns_at_end`, from
/// the engine's last word on it, when there is one).
pub fn until_finish(last: &Sample, finished_us: i64, cpu_ns_at_end: Option<u64>) -> Option<Usage> {
    let dt = finished_us.checked_sub(last.at_us).filter(|d| *d > 0)?;
    Some(Usage {
        from_us: last.at_us,
        to_us: finished_us,
        cpu_ns: cpu_ns_at_end.map_or(0, |c| c.saturating_sub(last.cpu_ns)),
        memory_byte_us: u128::from(last.memory_bytes) * dt as u128,
        running_us: dt,
    })
}

/// One vCPU-second in CPU nanoseconds.
pub const VCPU_SECOND: u128 = 1_000_000_000;
/// One GiB-second in byte-microseconds.
pub const GIB_SECOND: u128 = (1 << 30) * 1_000_000;
/// One instance-second in microseconds.
pub const INSTANCE_SECOND: u128 = 1_000_000;
/// A million requests.
pub const MILLION: u128 = 1_000_000;

/// `quantity` (in units of `per`) at `price` nano-units per unit, in nano-units, rounded half
/// up once, here: the ledger keeps nano-units, and a total is the exact sum of them.
pub fn cost(quantity: u128, price_nanos: i64, per: u128) -> i64 {
    let price = u128::try_from(price_nanos.max(0)).unwrap_or(0);
    let exact = quantity.saturating_mul(price);
    i64::try_from((exact + per / 2) / per).unwrap_or(i64::MAX)
}

/// A day in microseconds.
pub const DAY_US: i64 = 86_400_000_000;

/// The usage cut at UTC midnights, each part its share of the whole by time (the last part
/// takes what integer division leaves): a record is of one day.
pub fn split_days(u: Usage) -> Vec<Usage> {
    let whole = u.to_us - u.from_us;
    if whole <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut cpu_left, mut mem_left) = (u128::from(u.cpu_ns), u.memory_byte_us);
    let mut from = u.from_us;
    while from < u.to_us {
        let midnight = (from.div_euclid(DAY_US) + 1) * DAY_US;
        let to = midnight.min(u.to_us);
        let (cpu, mem) = if to == u.to_us {
            (cpu_left, mem_left)
        } else {
            let d = (to - from) as u128;
            (
                u128::from(u.cpu_ns) * d / whole as u128,
                u.memory_byte_us * d / whole as u128,
            )
        };
        cpu_left -= cpu;
        mem_left -= mem;
        out.push(Usage {
            from_us: from,
            to_us: to,
            cpu_ns: cpu as u64,
            memory_byte_us: mem,
            running_us: to - from,
        });
        from = to;
    }
    out
}

/// What the platform meters and prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Vcpu,
    Memory,
    Instance,
    Requests,
    Run,
}

impl Resource {
    pub const ALL: [Resource; 5] = [
        Resource::Vcpu,
        Resource::Memory,
        Resource::Instance,
        Resource::Requests,
        Resource::Run,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Vcpu => "vcpu",
            Resource::Memory => "memory",
            Resource::Instance => "instance",
            Resource::Requests => "requests",
            Resource::Run => "run",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The unit quantities are shown in.
    pub fn unit(self) -> &'static str {
        match self {
            Resource::Vcpu => "vCPU-s",
            Resource::Memory => "GiB-s",
            Resource::Instance => "instance-s",
            Resource::Requests => "requests",
            Resource::Run => "runs",
        }
    }

    /// What a price is per.
    pub fn price_unit(self) -> &'static str {
        match self {
            Resource::Vcpu => "vCPU-s",
            Resource::Memory => "GiB-s",
            Resource::Instance => "instance-s",
            Resource::Requests => "million requests",
            Resource::Run => "run",
        }
    }

    /// Base units of a record (CPU ns, byte-ms, µs, requests, runs) in one shown unit.
    pub fn base_per_unit(self) -> u128 {
        match self {
            Resource::Vcpu => VCPU_SECOND,
            Resource::Memory => (1 << 30) * 1000,
            Resource::Instance => INSTANCE_SECOND,
            Resource::Requests | Resource::Run => 1,
        }
    }

    /// Base units one price is for.
    pub fn base_per_price(self) -> u128 {
        match self {
            Resource::Requests => MILLION,
            other => other.base_per_unit(),
        }
    }

    pub fn price(self, p: &crate::store::PriceRow) -> i64 {
        match self {
            Resource::Vcpu => p.vcpu_second,
            Resource::Memory => p.gib_second,
            Resource::Instance => p.instance_second,
            Resource::Requests => p.million_requests,
            Resource::Run => p.run,
        }
    }

    /// A quantity in base units as millionths of the shown unit, rounded half up.
    pub fn micros(self, base: u128) -> i64 {
        let per = self.base_per_unit();
        i64::try_from((base * 1_000_000 + per / 2) / per).unwrap_or(i64::MAX)
    }
}

/// The record quantities of an interval of a container's usage: CPU nanoseconds,
/// byte-milliseconds of memory (rounded half up from byte-µs), microseconds run.
pub fn quantities(u: &Usage) -> [(Resource, i64); 3] {
    let clamp = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
    [
        (Resource::Vcpu, clamp(u128::from(u.cpu_ns))),
        (Resource::Memory, clamp((u.memory_byte_us + 500) / 1000)),
        (Resource::Instance, u.running_us),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_s: i64, cpu_ms: u64, mib: u64) -> Sample {
        Sample {
            at_us: at_s * 1_000_000,
            cpu_ns: cpu_ms * 1_000_000,
            memory_bytes: mib << 20,
        }
    }

    #[test]
    fn consecutive_samples_make_exact_usage() {
        // One core for 10 s; 512 MiB held throughout.
        let u = between(&s(0, 0, 512), &s(10, 10_000, 512)).unwrap();
        assert_eq!(u.cpu_ns as u128, 10 * VCPU_SECOND);
        assert_eq!(u.memory_byte_us, 5 * GIB_SECOND, "0.5 GiB for 10 s");
        assert_eq!(u.running_us, 10_000_000);
        // Memory rising from 0 to 1 GiB over 4 s: the trapezoid, 2 GiB-s.
        let u = between(&s(0, 0, 0), &s(4, 0, 1024)).unwrap();
        assert_eq!(u.memory_byte_us, 2 * GIB_SECOND);
        assert!(
            between(&s(5, 0, 0), &s(5, 0, 0)).is_none(),
            "no time, no interval"
        );
        assert!(between(&s(6, 0, 0), &s(5, 0, 0)).is_none());
    }

    #[test]
    fn a_counter_that_starts_again_is_all_new_usage() {
        let u = between(&s(0, 9_000, 10), &s(10, 2_000, 10)).unwrap();
        assert_eq!(u.cpu_ns, 2_000_000_000);
    }

    #[test]
    fn the_first_and_last_intervals_close_at_the_start_and_the_finish() {
        let first = since_start(0, &s(3, 1_500, 100)).unwrap();
        assert_eq!(
            (first.from_us, first.to_us, first.cpu_ns),
            (0, 3_000_000, 1_500_000_000)
        );
        let last = until_finish(&s(20, 5_000, 256), 22_500_000, Some(7_000_000_000)).unwrap();
        assert_eq!(last.running_us, 2_500_000);
        assert_eq!(last.cpu_ns, 2_000_000_000);
        assert_eq!(last.memory_byte_us, (256u128 << 20) * 2_500_000);
        assert_eq!(
            until_finish(&s(20, 0, 0), 22_000_000, None).unwrap().cpu_ns,
            0
        );
    }

    #[test]
    fn costs_are_nano_units_rounded_once_per_record() {
        // 10 vCPU-s at 0.000012 per vCPU-s = 0.00012 = 120,000 nano-units.
        assert_eq!(cost(10 * VCPU_SECOND, 12_000, VCPU_SECOND), 120_000);
        // 1 ns of CPU at 0.000012: 0.000012 nano-units, rounds to 0; half a nano rounds up.
        assert_eq!(cost(1, 12_000, VCPU_SECOND), 0);
        assert_eq!(cost(1, 500_000_000, VCPU_SECOND), 1);
        // 2.5 million requests at 0.40 per million = 1.00.
        assert_eq!(cost(2_500_000, 400_000_000, MILLION), 1_000_000_000);
        // 5 GiB-s at 0.0000015 = 0.0000075 = 7,500 nano-units.
        assert_eq!(cost(5 * GIB_SECOND, 1_500, GIB_SECOND), 7_500);
    }

    #[test]
    fn usage_is_cut_at_midnight_by_its_share_of_the_time() {
        let u = Usage {
            from_us: DAY_US - 3_000_000,
            to_us: DAY_US + 1_000_000,
            cpu_ns: 4_000_000_001,
            memory_byte_us: 8,
            running_us: 4_000_000,
        };
        let parts = split_days(u);
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].to_us, parts[1].from_us), (DAY_US, DAY_US));
        assert_eq!(parts[0].cpu_ns, 3_000_000_000);
        assert_eq!(parts[1].cpu_ns, 1_000_000_001, "the remainder goes last");
        assert_eq!(parts[0].memory_byte_us + parts[1].memory_byte_us, 8);
        assert_eq!(
            split_days(Usage {
                from_us: 5,
                to_us: 9,
                ..u
            })
            .len(),
            1
        );
    }

    #[test]
    fn quantities_become_millionths_of_their_unit() {
        assert_eq!(Resource::Vcpu.micros(1_500_000_000), 1_500_000);
        assert_eq!(Resource::Memory.micros((1 << 30) * 1000), 1_000_000);
        assert_eq!(Resource::Requests.micros(3), 3_000_000);
        assert_eq!(Resource::parse("memory"), Some(Resource::Memory));
        let q = quantities(&Usage {
            from_us: 0,
            to_us: 2_000_000,
            cpu_ns: 7,
            memory_byte_us: 1_499,
            running_us: 2_000_000,
        });
        assert_eq!(q[1], (Resource::Memory, 1));
    }
}
