//! acaload: declarative load tests for ACA-Py agents and DIDComm mediators.
//! The binary is a thin shell over [`cli::main`]; the engine never sees clap.

/// Output that never panics. `println!`/`eprintln!` panic when the stream is a closed pipe
/// (`acaload run … 2>&1 | head`, a supervisor that went away); a lost line must not cost the
/// run or its results, so every line the tool prints goes through these.
pub mod console {
    /// Like `eprintln!`, ignoring write errors.
    #[macro_export]
    macro_rules! errln {
        ($($arg:tt)*) => {{
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), $($arg)*);
        }};
    }

    /// Like `println!`, ignoring write errors.
    #[macro_export]
    macro_rules! outln {
        ($($arg:tt)*) => {{
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout(), $($arg)*);
        }};
    }

    /// Like `print!`, ignoring write errors.
    #[macro_export]
    macro_rules! out {
        ($($arg:tt)*) => {{
            use std::io::Write as _;
            let _ = write!(std::io::stdout(), $($arg)*);
        }};
    }
}

pub mod cli;
pub mod didcomm;
pub mod engine;
pub mod measure;
pub mod output;
pub mod plan;
pub mod results;
pub(crate) mod tools;
