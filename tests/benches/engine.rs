//! Engine benchmarks (issue 3 targets): one `step` for typical states (target: median under
//! 10 µs) and `flows check` over 200 flow files (target: under 300 ms); one `step` on free
//! text that goes through the understanding (issue 22 target: median under 50 µs).
//!
//! Run with `cargo bench --bench engine`. Figures are medians of repeated batches, so a noisy
//! machine shows in the spread, not in the median. `cargo bench --bench engine -- <words>`
//! runs only the cases whose name holds `<words>` (for counting instructions under
//! `valgrind --tool=callgrind`, which a loaded machine does not disturb).

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use insurebot::engine::{Conversation, Event, FlowSet, step};

#[path = "../support/bench_flows.rs"]
mod bench_flows;

fn main() {
    // Cargo passes `--bench`; the first other argument picks cases.
    let only = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let report = |what: &str, f: &mut dyn FnMut() -> (Duration, Duration, Duration)| {
        if only.as_deref().is_none_or(|o| what.contains(o)) {
            print_row(what, f());
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let flows =
        FlowSet::load(&root.join("flows"), &root.join("locales")).expect("shipped flows load");
    let now = Utc::now();

    // A fresh conversation greeting the bot: the menu is rendered as a 7-row list.
    let fresh = Conversation::new("en");
    let greet = Event::Text("hi".into());
    report("step: 'hi' → main menu (list of 7)", &mut || {
        median_per_iteration(2_000, 25, || {
            std::hint::black_box(step(&flows, &fresh, &greet, now));
        })
    });

    // A tap from the menu into a flow that asks a question.
    let at_menu = step(&flows, &fresh, &greet, now).conversation;
    let tap = Event::ListRow {
        id: "language".into(),
    };
    report("step: list tap → language buttons", &mut || {
        median_per_iteration(2_000, 25, || {
            std::hint::black_box(step(&flows, &at_menu, &tap, now));
        })
    });

    // Free text that no state understands (re-prompt path).
    let nonsense = Event::Text("qwertyuiop".into());
    report("step: misunderstood text → re-prompt", &mut || {
        median_per_iteration(2_000, 25, || {
            std::hint::black_box(step(&flows, &at_menu, &nonsense, now));
        })
    });

    // Free text understood (issue 22): Hinglish, a typo (the fuzzy path over the whole
    // vocabulary), Tamil script, two close intents (the "Did you mean" reply), long messages
    // that match nothing (16 content words is the most the matcher reads), and the longest
    // text WhatsApp allows.
    let longest: String = "my car broke down near pune and the towing guy wants cash "
        .chars()
        .cycle()
        .take(4096)
        .collect();
    for (what, text) in [
        ("step: free text, Hinglish → claim", "mera claim kahan hai"),
        ("step: free text, typos → claim", "claim stauts plz"),
        ("step: free text, Tamil script → claim", "என் க்ளைம் எங்கே?"),
        (
            "step: free text, two close → did you mean",
            "policy premium",
        ),
        (
            "step: free text, 12 words → nothing",
            "my car broke down near pune and the towing guy wants cash",
        ),
        (
            "step: free text, 16 words → nothing",
            "yesterday evening my neighbour parked his scooter behind our gate so the \
             milkman could not deliver",
        ),
        ("step: free text, 4,096 chars → nothing", longest.as_str()),
    ] {
        let event = Event::Text(text.into());
        report(what, &mut || {
            median_per_iteration(2_000, 25, || {
                std::hint::black_box(step(&flows, &at_menu, &event, now));
            })
        });
    }

    // `flows check` on 200 flow files: the 11 shipped ones plus generated ones like them.
    let dir = std::env::temp_dir().join(format!("insurebot-bench-{}", std::process::id()));
    let flows_dir = dir.join("flows");
    assert_eq!(bench_flows::write(root, &flows_dir), bench_flows::FLOWS);
    let locales = root.join("locales");
    let count = std::fs::read_dir(&flows_dir).unwrap().count();
    report(&format!("flows check: {count} flow files"), &mut || {
        median_per_iteration(1, 9, || {
            let set = insurebot::engine::check(&flows_dir, &locales).expect("generated flows pass");
            std::hint::black_box(set);
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `f` `iterations` times per batch, `batches` times; the median time of one call.
fn median_per_iteration(
    iterations: u32,
    batches: usize,
    mut f: impl FnMut(),
) -> (Duration, Duration, Duration) {
    let mut per_call: Vec<Duration> = (0..batches)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                f();
            }
            started.elapsed() / iterations
        })
        .collect();
    per_call.sort();
    (per_call[0], per_call[batches / 2], per_call[batches - 1])
}

fn print_row(what: &str, (min, median, max): (Duration, Duration, Duration)) {
    println!("{what:<45} median {median:>10.2?}   (min {min:.2?}, max {max:.2?})");
}
