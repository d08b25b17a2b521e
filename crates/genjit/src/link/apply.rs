//! Step 4 of linking: copy section bytes, fill GOT and stubs, apply relocations, collect definitions.

use super::{reloc_name, DefinedSymbol, Layout, Linked, Linker, Placement, RelocRecord, RelocTarget};
use crate::error::{Error, Result};
use crate::heap::Kind;
use object::elf;
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex, SymbolIndex,
    SymbolKind, SymbolSection,
};
use std::collections::HashMap;

/// A resolved symbol value and what it refers to.
type Value = (u64, RelocTarget);

struct Bases {
    code: usize,
    data: usize,
}

impl Bases {
    fn of_linked(linked: &Linked) -> Bases {
        Bases {
            code: linked.code.as_ref().map_or(0, |b| b.addr()),
            data: linked.data.as_ref().map_or(0, |b| b.addr()),
        }
    }

    fn of(&self, kind: Kind) -> usize {
        match kind {
            Kind::Code => self.code,
            Kind::Data => self.data,
        }
    }
}

impl Linker<'_> {
    pub(super) fn fill(
        &self,
        layout: &Layout,
        externals: &HashMap<SymbolIndex, usize>,
        linked: &mut Linked,
    ) -> Result<()> {
        let bases = Bases::of_linked(linked);
        let import_index: HashMap<String, u32> =
            linked.imports.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
        self.copy_sections(layout, linked)?;
        let value = |sym: SymbolIndex| self.symbol_value(sym, layout, &bases, externals, &import_index);
        // References go through the module's own entries; definitions (`collect`) keep the body address.
        let reference = |sym: SymbolIndex| match self.own.get(&sym) {
            Some(&stub) => Ok((stub as u64, RelocTarget::Absolute(stub as u64))),
            None => value(sym),
        };
        self.write_got_and_stubs(layout, linked, &reference)?;
        // Counting stubs lead to the body itself (`value`), never to the function's own entry.
        for (&function, &(stub, counter)) in &layout.counting {
            let (body, counter) = (value(function)?.0 as usize, value(counter)?.0 as usize);
            let code = &mut block_bytes(linked, Kind::Code)[stub..stub + crate::sys::stubs::STUB_LEN];
            crate::sys::stubs::write_stub(code, bases.code + stub, counter, body);
        }
        for (r, &stub) in self.lazy.iter().zip(&layout.lazy) {
            let record = value(r.record)?.0 as usize;
            let code = &mut block_bytes(linked, Kind::Code)[stub..stub + crate::sys::stubs::LAZY_STUB_LEN];
            crate::sys::stubs::write_lazy_stub(code, record);
        }
        for section in self.relocatable_sections() {
            let place = layout.sections[&section.index()];
            for (offset, reloc) in section.relocations() {
                let RelocationFlags::Elf { r_type } = reloc.flags() else {
                    return Err(self.bad("non-ELF relocation".to_string()));
                };
                // Every relocation, even one that writes nothing (`R_X86_64_NONE`), must lie in its section.
                if offset >= place.size as u64 {
                    return Err(self.bad(format!(
                        "relocation {} at {offset:#x} outside its section {} ({} bytes)",
                        reloc_name(r_type),
                        section.name().unwrap_or("?"),
                        place.size
                    )));
                }
                let mut target_section = None;
                let (s, target, sym) = match reloc.target() {
                    // Unwind info describes bodies, never entries.
                    RelocationTarget::Symbol(sym) if section.name() == Ok(".eh_frame") => {
                        let (s, t) = value(sym)?;
                        (s, t, Some(sym))
                    }
                    RelocationTarget::Symbol(sym) => {
                        let (s, t) = reference(sym)?;
                        (s, t, Some(sym))
                    }
                    RelocationTarget::Section(si) => {
                        target_section = Some(si);
                        let p = self.placement(layout, si)?;
                        (
                            (bases.of(p.kind) + p.offset) as u64,
                            RelocTarget::Local(p.kind, p.offset as u32),
                            None,
                        )
                    }
                    RelocationTarget::Absolute => (0, RelocTarget::Absolute(0), None),
                    _ => return Err(self.bad("unknown relocation target".to_string())),
                };
                let field = Field {
                    place,
                    offset: offset as usize,
                    r_type,
                    sym,
                    target_section,
                    addend: reloc.addend(),
                };
                self.apply(layout, &bases, linked, &field, s, &section)?;
                if !self.relocs {
                    continue;
                }
                linked.relocs.push(RelocRecord {
                    block: place.kind,
                    offset: (place.offset + offset as usize) as u32,
                    r_type,
                    target,
                    addend: reloc.addend(),
                });
            }
        }
        self.collect(layout, &bases, linked)
    }

    fn placement(&self, layout: &Layout, si: SectionIndex) -> Result<Placement> {
        layout
            .sections
            .get(&si)
            .copied()
            .ok_or_else(|| self.bad(format!("reference to unplaced section {}", si.0)))
    }

    fn copy_sections(&self, layout: &Layout, linked: &mut Linked) -> Result<()> {
        for section in self.relocatable_sections() {
            let place = layout.sections[&section.index()];
            if section.kind() == object::SectionKind::UninitializedData {
                // Free data memory is zero; a reused code block holds `int3` (or a page never written).
                if place.kind == Kind::Code {
                    block_bytes(linked, Kind::Code)[place.offset..place.offset + place.size].fill(0);
                }
                continue;
            }
            let bytes = section.data().map_err(|e| self.bad(e.to_string()))?;
            if bytes.len() != place.size {
                return Err(self.bad(format!("section {} data is truncated", section.index().0)));
            }
            block_bytes(linked, place.kind)[place.offset..place.offset + place.size].copy_from_slice(bytes);
        }
        // The unwinder reads `.eh_frame` until a zero length: write the terminator explicitly, since a reused
        // block holds whatever its previous owner left (or `int3` fill), not zeros.
        if let Some(eh) = layout.eh_frame {
            let size =
                self.file.sections().find(|s| s.name() == Ok(".eh_frame")).map_or(0, |s| s.size() as usize);
            block_bytes(linked, Kind::Code)[eh + size..eh + size + 4].fill(0);
        }
        Ok(())
    }

    fn symbol_value(
        &self,
        sym: SymbolIndex,
        layout: &Layout,
        bases: &Bases,
        externals: &HashMap<SymbolIndex, usize>,
        imports: &HashMap<String, u32>,
    ) -> Result<Value> {
        if let Some(&addr) = externals.get(&sym) {
            let name = self.file.symbol_by_index(sym).and_then(|s| s.name()).unwrap_or("");
            let target =
                imports.get(name).map_or(RelocTarget::Absolute(addr as u64), |&i| RelocTarget::Import(i));
            return Ok((addr as u64, target));
        }
        let symbol = self.file.symbol_by_index(sym).map_err(|e| self.bad(e.to_string()))?;
        match symbol.section() {
            SymbolSection::Section(si) => {
                let p = self.placement(layout, si)?;
                let off = (p.offset as u64).wrapping_add(symbol.address()); // range-checked where applied
                Ok(((bases.of(p.kind) as u64).wrapping_add(off), RelocTarget::Local(p.kind, off as u32)))
            }
            SymbolSection::Absolute => Ok((symbol.address(), RelocTarget::Absolute(symbol.address()))),
            SymbolSection::Common => {
                let off = layout.commons[&sym];
                Ok(((bases.data + off) as u64, RelocTarget::Local(Kind::Data, off as u32)))
            }
            _ => Err(self.bad(format!("symbol `{}` has no usable definition", symbol.name().unwrap_or("?")))),
        }
    }

    fn write_got_and_stubs(
        &self,
        layout: &Layout,
        linked: &mut Linked,
        value: &dyn Fn(SymbolIndex) -> Result<Value>,
    ) -> Result<()> {
        for (&sym, &slot) in &layout.got {
            let (s, _) = value(sym)?;
            block_bytes(linked, Kind::Code)[slot..slot + 8].copy_from_slice(&s.to_le_bytes());
        }
        for (&sym, &stub) in &layout.stubs {
            let (s, _) = value(sym)?;
            let code = &mut block_bytes(linked, Kind::Code)[stub..stub + 16];
            // jmp *0(%rip); .quad target; two bytes of int3 padding.
            code[..6].copy_from_slice(&[0xFF, 0x25, 0, 0, 0, 0]);
            code[6..14].copy_from_slice(&s.to_le_bytes());
            code[14..].fill(0xCC);
        }
        Ok(())
    }

    fn apply(
        &self,
        layout: &Layout,
        bases: &Bases,
        linked: &mut Linked,
        field: &Field,
        s: u64,
        section: &object::read::elf::ElfSection64<'_, '_, object::LittleEndian>,
    ) -> Result<()> {
        let a = field.addend;
        let s = s as i128;
        let a = a as i128;
        let p = (bases.of(field.place.kind) + field.place.offset).wrapping_add(field.offset) as i128;
        let code_base = bases.code as i128;
        let got_base = code_base + layout.got_base as i128;
        let got_slot = || -> Result<i128> {
            let sym = field.sym.ok_or_else(|| self.bad("GOT relocation without a symbol".to_string()))?;
            Ok(code_base + layout.got[&sym] as i128)
        };
        let (value, width, signed): (i128, usize, Option<bool>) = match field.r_type {
            elf::R_X86_64_NONE => return Ok(()),
            elf::R_X86_64_64 => (s + a, 8, None),
            elf::R_X86_64_PC32 => (s + a - p, 4, Some(true)),
            elf::R_X86_64_PLT32 => {
                let direct = s + a - p;
                match field.sym.and_then(|sym| layout.stubs.get(&sym)) {
                    Some(&stub) if i32::try_from(direct).is_err() => {
                        (code_base + stub as i128 + a - p, 4, Some(true))
                    }
                    _ => (direct, 4, Some(true)),
                }
            }
            elf::R_X86_64_GOTPCREL | elf::R_X86_64_GOTPCRELX | elf::R_X86_64_REX_GOTPCRELX => {
                (got_slot()? + a - p, 4, Some(true))
            }
            elf::R_X86_64_32 => (s + a, 4, Some(false)),
            elf::R_X86_64_32S => (s + a, 4, Some(true)),
            elf::R_X86_64_PC64 => (s + a - p, 8, None),
            elf::R_X86_64_GOTOFF64 => (s + a - got_base, 8, None),
            elf::R_X86_64_GOTPC32 => (got_base + a - p, 4, Some(true)),
            elf::R_X86_64_GOTPC64 => (got_base + a - p, 8, None),
            elf::R_X86_64_GOT64 => (got_slot()? - got_base + a, 8, None),
            elf::R_X86_64_GOTPCREL64 => (got_slot()? + a - p, 8, None),
            elf::R_X86_64_SIZE32 | elf::R_X86_64_SIZE64 => {
                let size =
                    field.sym.and_then(|sym| self.file.symbol_by_index(sym).ok()).map_or(0, |s| s.size())
                        as i128;
                if field.r_type == elf::R_X86_64_SIZE32 {
                    (size + a, 4, Some(false))
                } else {
                    (size + a, 8, None)
                }
            }
            other => {
                return Err(Error::UnsupportedRelocation {
                    module: self.module.to_string(),
                    kind: reloc_name(other),
                    section: section.name().unwrap_or("?").to_string(),
                    symbol: self.target_name(field),
                })
            }
        };
        let fits = match signed {
            None => true,
            Some(true) => i32::try_from(value).is_ok(),
            Some(false) => u32::try_from(value).is_ok(),
        };
        if !fits {
            return Err(Error::RelocationOutOfRange {
                module: self.module.to_string(),
                kind: reloc_name(field.r_type),
                symbol: self.target_name(field),
                value,
            });
        }
        let start = field.place.offset + field.offset;
        if field.offset.checked_add(width).is_none_or(|end| end > field.place.size) {
            return Err(self.bad(format!("relocation at {:#x} outside its section", field.offset)));
        }
        let bytes = (value as i64).to_le_bytes();
        block_bytes(linked, field.place.kind)[start..start + width].copy_from_slice(&bytes[..width]);
        Ok(())
    }

    /// What a relocation points at, for errors: the symbol's name, or the section's, or "an absolute value".
    fn target_name(&self, field: &Field) -> String {
        if let Some(name) =
            field.sym.and_then(|s| self.file.symbol_by_index(s).ok()).and_then(|s| s.name().ok())
        {
            return name.to_string();
        }
        match field.target_section.map(|si| (si, self.file.section_by_index(si).and_then(|s| s.name()))) {
            Some((_, Ok(name))) => format!("section {name}"),
            Some((si, Err(_))) => format!("section #{}", si.0),
            None => "an absolute value".to_string(),
        }
    }

    /// Every definition's final address, once the blocks are allocated (nothing needs resolving for it):
    /// global and weak names for the dylib, and every function for profilers if asked.
    pub(super) fn define(&self, layout: &Layout, linked: &mut Linked) -> Result<()> {
        let bases = Bases::of_linked(linked);
        let none = HashMap::new();
        let value = |sym: SymbolIndex| self.symbol_value(sym, layout, &bases, &none, &HashMap::new());
        for symbol in self.file.symbols() {
            if symbol.is_undefined() || symbol.kind() == SymbolKind::Section {
                continue;
            }
            let counting = layout.counting.get(&symbol.index()).map(|&(stub, _)| bases.code + stub);
            if self.functions && symbol.kind() == SymbolKind::Text {
                if let (Ok(name), Ok((addr, _))) = (symbol.name(), value(symbol.index())) {
                    let (addr, size, name) = (addr as usize, symbol.size() as usize, name.to_string());
                    if let Some(stub) = counting {
                        let (size, name) = (crate::sys::stubs::STUB_LEN, format!("{name}.gj.count"));
                        linked.functions.push(super::FunctionSymbol { addr: stub, size, name });
                    }
                    linked.functions.push(super::FunctionSymbol { addr, size, name });
                }
            }
            if symbol.is_local() {
                if super::is_ifunc(&symbol) {
                    // References to it would reach the resolver itself: there is no entry to redirect.
                    return Err(self.unsupported("a local indirect function (ifunc)".to_string()));
                }
                continue;
            }
            let name = symbol.name().map_err(|e| self.bad(e.to_string()))?;
            if name.is_empty() {
                continue;
            }
            let (addr, _) = value(symbol.index())?;
            if crate::compile::osr::is_entry(name) {
                linked.osr.push((name.into(), addr as usize));
                continue;
            }
            linked.symbols.push(DefinedSymbol {
                name: name.into(),
                // A counted function's entry leads to its counting stub first.
                addr: counting.unwrap_or(addr as usize),
                weak: symbol.is_weak(),
                hidden: super::hidden(&symbol),
                is_function: symbol.kind() == SymbolKind::Text,
                ifunc: super::is_ifunc(&symbol),
                counting: counting.is_some(),
            });
        }
        for (r, &stub) in self.lazy.iter().zip(&layout.lazy) {
            let addr = bases.code + stub;
            if self.functions {
                let (size, name) = (crate::sys::stubs::LAZY_STUB_LEN, format!("{}.gj.lazy", r.function));
                linked.functions.push(super::FunctionSymbol { addr, size, name });
            }
            linked.symbols.push(DefinedSymbol {
                name: r.function.into(),
                addr,
                weak: r.weak,
                hidden: r.hidden,
                is_function: true,
                ifunc: false,
                counting: false,
            });
        }
        Ok(())
    }

    /// Constructor and destructor lists and the unwind tables' address, once relocated.
    fn collect(&self, layout: &Layout, bases: &Bases, linked: &mut Linked) -> Result<()> {
        let mut inits = Vec::new();
        let mut finis = Vec::new();
        for section in self.relocatable_sections() {
            let Some(kind) = StructorSection::parse(section.name().unwrap_or("")) else { continue };
            let place = layout.sections[&section.index()];
            let bytes = &block_bytes(linked, place.kind)[place.offset..place.offset + place.size];
            let mut entries: Vec<usize> = bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
                .collect();
            // `.init_array` runs forward and `.fini_array` backward; the older `.ctors` (which LLVM emits
            // unless told to use init arrays) runs backward and `.dtors` forward. Normalize to the arrays'.
            if kind.old_style {
                entries.reverse();
            }
            let list = if kind.ctor { &mut inits } else { &mut finis };
            list.push((kind.priority, entries));
        }
        inits.sort_by_key(|(p, _)| *p);
        finis.sort_by_key(|(p, _)| *p);
        linked.init =
            inits.into_iter().flat_map(|(_, e)| e).filter(|&a| a != 0 && a as isize != -1).collect();
        linked.fini =
            finis.into_iter().rev().flat_map(|(_, e)| e.into_iter().rev()).filter(|&a| a != 0).collect();
        linked.eh_frame = layout.eh_frame.map(|off| bases.code + off);
        Ok(())
    }
}

/// A constructor or destructor list section and its priority (lower runs first for constructors).
struct StructorSection {
    ctor: bool,
    priority: u32,
    /// `.ctors`/`.dtors`, stored in the reverse of the `.init_array`/`.fini_array` order.
    old_style: bool,
}

impl StructorSection {
    fn parse(name: &str) -> Option<StructorSection> {
        const KINDS: [(&str, bool, bool); 4] = [
            (".init_array", true, false),
            (".fini_array", false, false),
            (".ctors", true, true),
            (".dtors", false, true),
        ];
        let (ctor, old_style, rest) = KINDS
            .into_iter()
            .find_map(|(p, ctor, old)| name.strip_prefix(p).map(|rest| (ctor, old, rest)))?;
        let suffix: Option<u32> = match rest {
            "" => None,
            r => Some(r.strip_prefix('.')?.parse().ok()?),
        };
        // `.ctors.N`/`.dtors.N` encode priority P as N = 65535 - P.
        let priority = match (old_style, suffix) {
            (_, None) => 65535,
            (false, Some(p)) => p,
            (true, Some(n)) => 65535u32.saturating_sub(n),
        };
        Some(StructorSection { ctor, priority, old_style })
    }
}

struct Field {
    place: Placement,
    offset: usize,
    r_type: u32,
    sym: Option<SymbolIndex>,
    /// The section a section-relative relocation points into (`sym` is `None` then).
    target_section: Option<SectionIndex>,
    addend: i64,
}

fn block_bytes(linked: &mut Linked, kind: Kind) -> &mut [u8] {
    let block = match kind {
        Kind::Code => linked.code.as_mut(),
        Kind::Data => linked.data.as_mut(),
    };
    block.expect("a placed section has a block").bytes_mut()
}
