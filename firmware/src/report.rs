//! Where the report goes: its lines (`mote_board::report::Line`, the format `cargo xtask
//! qemu` parses) are written under QEMU to the host file `mote_board::report::FILE`
//! (semihosting, in QEMU's working directory), so the console stays free for logs (text,
//! or defmt); on hardware they are defmt lines over RTT.

use core::fmt::{self, Write};

use mote_board::report::Line;

pub struct Report {
    buf: [u8; 1024],
    len: usize,
    #[cfg(feature = "qemu")]
    fd: usize,
}

impl Report {
    #[cfg(feature = "qemu")]
    pub fn open() -> Option<Self> {
        let name = mote_board::report::FILE_NUL.as_bytes();
        // SAFETY: SYS_OPEN reads `name.len() - 1` bytes of a nul-terminated string.
        let fd = unsafe {
            cortex_m_semihosting::syscall!(OPEN, name.as_ptr(), cortex_m_semihosting::nr::open::W_TRUNC, name.len() - 1)
        };
        if fd as isize == -1 { None } else { Some(Report { buf: [0; 1024], len: 0, fd }) }
    }

    #[cfg(not(feature = "qemu"))]
    pub fn open() -> Option<Self> {
        Some(Report { buf: [0; 1024], len: 0 })
    }

    /// Writes one line.
    pub fn line(&mut self, line: Line<'_>) {
        let _ = write!(self, "{line}");
        let _ = self.write_str("\n");
        #[cfg(not(feature = "qemu"))]
        self.flush();
    }

    #[cfg(feature = "qemu")]
    pub fn flush(&mut self) {
        let mut rest = &self.buf[..self.len];
        while !rest.is_empty() {
            // SAFETY: SYS_WRITE reads `rest.len()` bytes from `rest`.
            let left = unsafe { cortex_m_semihosting::syscall!(WRITE, self.fd, rest.as_ptr(), rest.len()) };
            if left == 0 || left > rest.len() {
                break;
            }
            rest = &rest[rest.len() - left..];
        }
        self.len = 0;
    }

    #[cfg(not(feature = "qemu"))]
    pub fn flush(&mut self) {
        // One defmt line per report line (the buffer ends with '\n').
        let text = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?");
        defmt::println!("{=str}", text.trim_end());
        self.len = 0;
    }
}

impl Write for Report {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len() / 2) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

#[cfg(feature = "qemu")]
impl Drop for Report {
    fn drop(&mut self) {
        self.flush();
        // SAFETY: closes the handle SYS_OPEN gave.
        unsafe { cortex_m_semihosting::syscall!(CLOSE, self.fd) };
    }
}
