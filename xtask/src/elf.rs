//! Just enough of 32-bit little-endian ELF to read a firmware's footprint: section sizes
//! and symbol sizes.

use anyhow::{Result, bail};

#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    pub size: u64,
    pub is_func: bool,
}

#[derive(Debug, Clone)]
pub struct Elf {
    pub sections: Vec<Section>,
    pub symbols: Vec<Symbol>,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_le_bytes([s[0], s[1]])),
        None => bail!("ELF truncated at {at}"),
    }
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        None => bail!("ELF truncated at {at}"),
    }
}

fn cstr(b: &[u8], at: usize) -> String {
    let s = b.get(at..).unwrap_or(&[]);
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

impl Elf {
    pub fn parse(b: &[u8]) -> Result<Elf> {
        if b.get(..4) != Some(b"\x7fELF") || b.get(4) != Some(&1) || b.get(5) != Some(&1) {
            bail!("not a 32-bit little-endian ELF file");
        }
        let (shoff, shentsize, shnum, shstrndx) = (
            u32_at(b, 0x20)? as usize,
            u16_at(b, 0x2e)? as usize,
            u16_at(b, 0x30)? as usize,
            u16_at(b, 0x32)? as usize,
        );
        // (name, type, offset, size, link)
        let header = |i: usize| -> Result<(u32, u32, usize, usize, usize)> {
            let at = shoff + i * shentsize;
            Ok((
                u32_at(b, at)?,
                u32_at(b, at + 4)?,
                u32_at(b, at + 16)? as usize,
                u32_at(b, at + 20)? as usize,
                u32_at(b, at + 24)? as usize,
            ))
        };
        let strtab_off = header(shstrndx)?.2;
        let mut sections = Vec::new();
        let mut symbols = Vec::new();
        for i in 0..shnum {
            let (name, kind, off, size, link) = header(i)?;
            sections.push(Section { name: cstr(b, strtab_off + name as usize), size: size as u64 });
            if kind == 2 {
                // SHT_SYMTAB: 16-byte entries; names in section `link`.
                let names = header(link)?.2;
                for e in (off..off + size).step_by(16) {
                    let info = *b.get(e + 12).unwrap_or(&0);
                    symbols.push(Symbol {
                        name: cstr(b, names + u32_at(b, e)? as usize),
                        size: u32_at(b, e + 8)? as u64,
                        is_func: info & 0xf == 2,
                    });
                }
            }
        }
        Ok(Elf { sections, symbols })
    }

    /// Size of the first section called `name` (0 when absent).
    pub fn section(&self, name: &str) -> u64 {
        self.sections.iter().find(|s| s.name == name).map_or(0, |s| s.size)
    }

    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.iter().find(|s| s.name == name).map(|s| s.size)
    }

    /// Bytes of functions whose (mangled) names contain any of `crates`.
    pub fn code_of(&self, crates: &[&str]) -> u64 {
        self.symbols.iter().filter(|s| s.is_func && crates.iter().any(|c| s.name.contains(c))).map(|s| s.size).sum()
    }
}
