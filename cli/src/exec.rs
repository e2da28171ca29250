//! An interactive session in a container of the local Docker Engine that the platform prepared
//! (`faas service db connect`): this terminal in raw mode, attached to it.

use std::io::Write;

use bollard::Docker;
use futures_util::StreamExt;

use crate::error::{CliError, CliResult};

/// This machine's Docker Engine, when it is the platform's (a session prepared there can only
/// be attached to there); `what` runs there, `command` is what to run where the platform runs.
pub fn platform_engine(
    client: &crate::client::Client,
    what: &str,
    command: &str,
) -> CliResult<(tokio::runtime::Runtime, Docker)> {
    let info = client.info()?;
    let rt = crate::docker::runtime()?;
    let d = rt.block_on(async {
        let d = crate::docker::connect().await?;
        let local = crate::docker::engine_id(&d).await?;
        if local.is_none() || local != info.docker.engine_id {
            return Err(CliError::failed(
                format!("the platform runs its {what} on another Docker Engine than this one"),
                Some(format!("run `{command}` where the platform runs")),
            ));
        }
        Ok(d)
    })?;
    Ok((rt, d))
}

fn unavailable(e: impl std::fmt::Display) -> CliError {
    CliError::failed(format!("the Docker Engine does not answer: {e}"), None)
}

/// The terminal in raw mode (keys go to the remote program as typed) until dropped.
struct RawTerminal(Option<nix::sys::termios::Termios>);

impl RawTerminal {
    fn enter() -> Self {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return Self(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        Self(Some(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// Starts a command the platform prepared in a container of this engine (`faas service db
/// connect`) and attaches this terminal to it (or stdin and stdout when they are not one);
/// returns its exit code.
pub async fn attach_exec(docker: &Docker, exec: &str, tty: bool) -> CliResult<i64> {
    use bollard::exec::{ResizeExecOptions, StartExecOptions, StartExecResults};
    use tokio::io::AsyncWriteExt;
    let started = docker
        .start_exec(
            exec,
            Some(StartExecOptions {
                detach: false,
                tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(unavailable)?;
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    else {
        return Err(CliError::failed("the session did not attach", None));
    };
    let _raw = tty.then(RawTerminal::enter);
    if tty && let Some((rows, cols)) = console::Term::stdout().size_checked() {
        let _ = docker
            .resize_exec(
                exec,
                ResizeExecOptions {
                    height: rows,
                    width: cols,
                },
            )
            .await;
    }
    // Stdin is read on a thread of its own (a blocking read), and its end closes the input.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let feed = async move {
        while let Some(bytes) = rx.recv().await {
            if input.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = input.shutdown().await;
    };
    let show = async {
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        while let Some(Ok(chunk)) = output.next().await {
            use bollard::container::LogOutput;
            match chunk {
                LogOutput::StdErr { message } => {
                    let _ = err.write_all(&message);
                    let _ = err.flush();
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    let _ = out.write_all(&message);
                    let _ = out.flush();
                }
                LogOutput::StdIn { .. } => {}
            }
        }
    };
    tokio::select! {
        () = show => {}
        () = async { feed.await; std::future::pending::<()>().await } => {}
    }
    let inspected = docker.inspect_exec(exec).await.map_err(unavailable)?;
    Ok(inspected.exit_code.unwrap_or(-1))
}
