//! genjit's own static linker: one relocatable x86-64 ELF object into the code heap.
//!
//! ## Steps
//! Linking is split in two halves so that a batch of modules links like one shared object: [`place`]
//! every module first, then [`Placed::finish`] each.
//! 1. **Read** the object with the `object` crate and check it is a 64-bit little-endian x86-64 `ET_REL`.
//! 2. **Lay out** every allocated section: writable ones (`.data`, `.bss`, `.init_array`, ...) into one data
//!    block, the rest (`.text*`, `.rodata*`, `.eh_frame`, ...) into one code block, each at its alignment.
//!    Common symbols join the data block. After the sections the code block gets a GOT slot for every symbol
//!    reached through the GOT and a 16-byte stub (`jmp *0(%rip)` + address) for every external call target,
//!    and `.eh_frame` gets the four zero bytes that terminate it for the unwinder.
//! 3. **Allocate** both blocks from the heap and compute every definition's final address. This ends
//!    [`place`]: the caller now knows where everything of every module in the batch will be.
//! 4. **Resolve** undefined symbols through the caller's resolver (the dylib's search order, which sees the
//!    whole batch). All unresolved names are reported together; weak undefined ones become 0.
//! 5. **Copy** section bytes through the writable view and **apply** every relocation with its field checked
//!    against its width. A call whose target is out of 32-bit reach goes through the symbol's stub; any other
//!    overflow is a typed error, as is an unknown relocation type.
//!
//! A [`Placed`] module that is dropped unfinished (an error anywhere in the batch) gives its blocks back,
//! so the heap is as it was.
//!
//! Nothing is published here: the result is a [`Linked`] image whose symbols the dylib publishes under its
//! lock. On request ([`Extras::relocs`]) the relocation records are kept in the image ([`RelocRecord`]) so
//! the module can be relinked at another address without the object: with RELA every field is recomputed
//! from the symbol, the addend and the place, never from the bytes already there. Nothing asks yet, and
//! keeping them cost ~160 bytes per small module, a third of its metadata.

use crate::compile::Compiled;
use crate::error::{Error, Result};
use crate::heap::{align_up, Block, Heap, Kind};
use crate::sys::PAGE;
use object::elf;
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex, SymbolIndex,
    SymbolSection,
};
use parking_lot::Mutex;
use std::collections::HashMap;

/// A symbol the module defines, as published into its dylib.
#[derive(Clone, Debug)]
pub struct DefinedSymbol {
    /// The name (shared with the dylib's table and the function's entry).
    pub name: std::sync::Arc<str>,
    /// The run-time address.
    pub addr: usize,
    /// `STB_WEAK`: an existing definition wins over this one.
    pub weak: bool,
    /// `STV_HIDDEN`/`STV_INTERNAL`: visible inside the dylib only.
    pub hidden: bool,
    /// A function (`STT_FUNC`, or `STT_GNU_IFUNC`) rather than data.
    pub is_function: bool,
    /// An indirect function (`STT_GNU_IFUNC`): `addr` is its resolver until [`Linked::resolve_ifuncs`]
    /// runs it and stores the implementation it picks.
    pub ifunc: bool,
    /// A first-tier function whose calls are counted: `addr` is its counting stub (`sys::stubs`), which
    /// leads to the body.
    pub counting: bool,
}

/// A function's code, for profilers and debuggers (`perf` maps, GDB): local functions included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSymbol {
    /// The body's address.
    pub addr: usize,
    /// Its size in bytes, as the object's symbol table gives it.
    pub size: usize,
    /// The name.
    pub name: String,
}

/// What a kept relocation refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocTarget {
    /// A place inside this module's own blocks.
    Local(Kind, u32),
    /// The n-th name of [`Linked::imports`].
    Import(u32),
    /// An absolute value.
    Absolute(u64),
}

/// One applied relocation, kept so the module can be relinked elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelocRecord {
    /// The block holding the field.
    pub block: Kind,
    /// The field's offset in that block.
    pub offset: u32,
    /// The ELF relocation type (`R_X86_64_*`).
    pub r_type: u32,
    /// The symbol.
    pub target: RelocTarget,
    /// The addend.
    pub addend: i64,
}

/// A linked, not yet published module image.
#[derive(Debug)]
pub struct Linked {
    /// Text, read-only data, GOT, stubs and `.eh_frame`.
    pub code: Option<Block>,
    /// Writable data.
    pub data: Option<Block>,
    /// Global and weak definitions.
    pub symbols: Vec<DefinedSymbol>,
    /// Names resolved outside the module, in first-use order.
    pub imports: Vec<String>,
    /// `.init_array` entries in run order.
    pub init: Vec<usize>,
    /// `.fini_array` entries in run order.
    pub fini: Vec<usize>,
    /// Address of the zero-terminated `.eh_frame`, if any.
    pub eh_frame: Option<usize>,
    /// Every relocation applied; filled only when asked for ([`Extras::relocs`]).
    pub relocs: Vec<RelocRecord>,
    /// Every function the module defines, local ones included; filled only when asked for (profiling).
    pub functions: Vec<FunctionSymbol>,
    /// The module's OSR entries (global functions named `__gjo.*`, see `compile::osr`) and their
    /// addresses: the module's own, never published in its dylib's table.
    pub osr: Vec<(Box<str>, usize)>,
    /// A first tier's frames: each function with an OSR transfer and its stack slots' offsets from its
    /// frame array (read from the object's stack maps, see [`stackmap`]).
    pub frames: Vec<FrameSlots>,
    /// The object with its sections' addresses set to where they were placed, for GDB; only when asked.
    pub debug_object: Option<Vec<u8>>,
}

/// A first-tier function and where its stack slots are, as offsets in bytes from its frame array (the
/// array an OSR transfer fills with their addresses; see `compile::osr`).
pub type FrameSlots = (Box<str>, Box<[i32]>);

/// What the linker produces beyond the image, for profilers and debuggers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras {
    /// Fill [`Linked::functions`].
    pub functions: bool,
    /// Fill [`Linked::debug_object`].
    pub debug_object: bool,
    /// Fill [`Linked::relocs`] (40 bytes per relocation, kept for the module's life: only for code that
    /// will be relinked).
    pub relocs: bool,
}

/// A copy of `object` whose allocated sections' `sh_addr` are their run-time addresses: what GDB's JIT
/// interface reads (LLVM's RuntimeDyld does the same for MCJIT). GDB then places the object's symbols, and
/// relocates its debug sections, at the module's real addresses.
fn debug_object(object: &[u8], layout: &Layout, linked: &Linked) -> Vec<u8> {
    let mut out = object.to_vec();
    let u64_at =
        |b: &[u8], o: usize| b.get(o..o + 8).map(|x| u64::from_le_bytes(x.try_into().expect("8 bytes")));
    let u16_at =
        |b: &[u8], o: usize| b.get(o..o + 2).map(|x| u16::from_le_bytes(x.try_into().expect("2 bytes")));
    // The object parsed as ELF64 already, so the header fields exist; `get` keeps even a lie harmless.
    let (Some(shoff), Some(shentsize)) = (u64_at(&out, 0x28), u16_at(&out, 0x3a)) else { return out };
    for (index, p) in &layout.sections {
        let base = match p.kind {
            Kind::Code => linked.code.as_ref().map_or(0, Block::addr),
            Kind::Data => linked.data.as_ref().map_or(0, Block::addr),
        };
        let at = shoff as usize + index.0 * shentsize as usize + 0x10;
        if let Some(field) = out.get_mut(at..at + 8) {
            field.copy_from_slice(&((base + p.offset) as u64).to_le_bytes());
        }
    }
    out
}

impl Linked {
    /// Runs the resolver of every indirect function and stores the implementation's address, as the
    /// dynamic loader does. References to an indirect function go through its entry, which publishing then
    /// points at the implementation.
    ///
    /// # Safety
    /// - The module's code is relocated and may run: every resolver is a function of this module taking no
    ///   arguments (what `ifunc` IR compiles to) and returning a code address.
    pub unsafe fn resolve_ifuncs(&mut self) {
        for s in self.symbols.iter_mut().filter(|s| s.ifunc) {
            // SAFETY: forwarded from the caller's contract: the resolver is relocated code of this module
            // with the `ptr ()` signature LLVM gives ifunc resolvers.
            let resolver = unsafe { std::mem::transmute::<usize, extern "C" fn() -> usize>(s.addr) };
            s.addr = resolver();
            s.ifunc = false;
        }
    }

    /// Gives the blocks back to the heap (the module never ran).
    pub fn discard(self, heap: &Mutex<Heap>) {
        let mut heap = heap.lock();
        self.code.into_iter().chain(self.data).for_each(|b| heap.free(b));
    }
}

/// Where a placed section went.
#[derive(Clone, Copy, Debug)]
struct Placement {
    kind: Kind,
    offset: usize,
    size: usize,
}

type ObjFile<'a> = object::read::elf::ElfFile64<'a, object::LittleEndian>;

struct Layout {
    sections: HashMap<SectionIndex, Placement>,
    commons: HashMap<SymbolIndex, usize>,
    code_len: usize,
    data_len: usize,
    code_align: usize,
    data_align: usize,
    got: HashMap<SymbolIndex, usize>,
    stubs: HashMap<SymbolIndex, usize>,
    /// Counting stubs (`sys::stubs`) by function: the stub's offset and the counter's symbol.
    counting: HashMap<SymbolIndex, (usize, SymbolIndex)>,
    /// Lazy stubs (`sys::stubs`), in the order of [`Linker::lazy`]: each stub's offset.
    lazy: Vec<usize>,
    got_base: usize,
    eh_frame: Option<usize>,
}

/// The ELF name of an x86-64 relocation type, for errors.
pub fn reloc_name(r_type: u32) -> String {
    let name = match r_type {
        elf::R_X86_64_PC32 => "R_X86_64_PC32",
        elf::R_X86_64_PLT32 => "R_X86_64_PLT32",
        elf::R_X86_64_32 => "R_X86_64_32",
        elf::R_X86_64_32S => "R_X86_64_32S",
        elf::R_X86_64_GOTPCREL => "R_X86_64_GOTPCREL",
        elf::R_X86_64_GOTPCRELX => "R_X86_64_GOTPCRELX",
        elf::R_X86_64_REX_GOTPCRELX => "R_X86_64_REX_GOTPCRELX",
        elf::R_X86_64_GOTPC32 => "R_X86_64_GOTPC32",
        elf::R_X86_64_SIZE32 => "R_X86_64_SIZE32",
        elf::R_X86_64_GOT32 => "R_X86_64_GOT32",
        elf::R_X86_64_COPY => "R_X86_64_COPY",
        elf::R_X86_64_GLOB_DAT => "R_X86_64_GLOB_DAT",
        elf::R_X86_64_JUMP_SLOT => "R_X86_64_JUMP_SLOT",
        elf::R_X86_64_RELATIVE => "R_X86_64_RELATIVE",
        elf::R_X86_64_16 => "R_X86_64_16",
        elf::R_X86_64_PC16 => "R_X86_64_PC16",
        elf::R_X86_64_8 => "R_X86_64_8",
        elf::R_X86_64_PC8 => "R_X86_64_PC8",
        elf::R_X86_64_DTPMOD64 => "R_X86_64_DTPMOD64",
        elf::R_X86_64_DTPOFF64 => "R_X86_64_DTPOFF64",
        elf::R_X86_64_TPOFF64 => "R_X86_64_TPOFF64",
        elf::R_X86_64_TLSGD => "R_X86_64_TLSGD",
        elf::R_X86_64_TLSLD => "R_X86_64_TLSLD",
        elf::R_X86_64_DTPOFF32 => "R_X86_64_DTPOFF32",
        elf::R_X86_64_GOTTPOFF => "R_X86_64_GOTTPOFF",
        elf::R_X86_64_TPOFF32 => "R_X86_64_TPOFF32",
        elf::R_X86_64_GOTPC32_TLSDESC => "R_X86_64_GOTPC32_TLSDESC",
        elf::R_X86_64_TLSDESC_CALL => "R_X86_64_TLSDESC_CALL",
        elf::R_X86_64_TLSDESC => "R_X86_64_TLSDESC",
        elf::R_X86_64_IRELATIVE => "R_X86_64_IRELATIVE",
        elf::R_X86_64_GOTPLT64 => "R_X86_64_GOTPLT64",
        elf::R_X86_64_PLTOFF64 => "R_X86_64_PLTOFF64",
        _ => return format!("R_X86_64 type {r_type}"),
    };
    name.to_string()
}

fn is_got_reloc(r_type: u32) -> bool {
    matches!(
        r_type,
        elf::R_X86_64_GOTPCREL
            | elf::R_X86_64_GOTPCRELX
            | elf::R_X86_64_REX_GOTPCRELX
            | elf::R_X86_64_GOT64
            | elf::R_X86_64_GOTPCREL64
    )
}

struct Linker<'a> {
    file: ObjFile<'a>,
    module: &'a str,
    /// Stub addresses of the entries of this module's own global functions, by symbol (a lazy
    /// function's symbol is undefined in the object: the linker defines it).
    own: HashMap<SymbolIndex, usize>,
    /// The lazy functions the module defines by their records.
    lazy: Vec<LazyRecord<'a>>,
    /// Whether to list every function for profilers ([`Linked::functions`]).
    functions: bool,
    /// Whether to record every relocation ([`Linked::relocs`]).
    relocs: bool,
}

fn open<'a>(compiled: &'a Compiled) -> Result<ObjFile<'a>> {
    let module = compiled.name.as_str();
    let bad = |m: String| Error::Object { module: module.to_string(), message: m };
    ObjFile::parse(compiled.object.as_slice()).map_err(|e| bad(e.to_string()))
}

/// A global or weak definition the dylib's table gets (OSR entries are the module's own).
fn is_definition(symbol: &object::read::elf::ElfSymbol64<'_, '_, object::LittleEndian>) -> bool {
    !symbol.is_undefined()
        && !symbol.is_local()
        && symbol.kind() != object::SymbolKind::Section
        && !symbol.name().is_ok_and(crate::compile::osr::is_entry)
}

/// A lazy function of a lazy origin: `compile::tier::make_lazy` left it a declaration and defined its
/// record, a byte `__gjz.<tag>.<name>` telling whether the function was weak or hidden; the linker
/// defines the function at a lazy stub it writes for the record (`sys::stubs`).
struct LazyRecord<'a> {
    record: SymbolIndex,
    function: &'a str,
    weak: bool,
    hidden: bool,
}

/// The module's lazy records (none unless it is a lazy origin: elsewhere such a name is plain data).
fn lazy_records<'a>(compiled: &Compiled, file: &ObjFile<'a>) -> Vec<LazyRecord<'a>> {
    let mut records = Vec::new();
    if !compiled.lazy {
        return records;
    }
    for symbol in file.symbols() {
        if !is_definition(&symbol) || symbol.kind() != object::SymbolKind::Data {
            continue;
        }
        let Some(function) = symbol.name().ok().and_then(crate::compile::tier::lazy_function) else {
            continue;
        };
        // The record's byte, from its section's bytes (none in `.bss`: zero).
        let flags = symbol
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
            .and_then(|section| section.data().ok())
            .and_then(|data| data.get(usize::try_from(symbol.address()).ok()?).copied())
            .unwrap_or(0);
        records.push(LazyRecord {
            record: symbol.index(),
            function,
            weak: flags & crate::compile::tier::RECORD_WEAK != 0,
            hidden: flags & crate::compile::tier::RECORD_HIDDEN != 0,
        });
    }
    records
}

/// `STT_GNU_IFUNC`: the symbol's value is a resolver that returns the implementation.
fn is_ifunc(symbol: &object::read::elf::ElfSymbol64<'_, '_, object::LittleEndian>) -> bool {
    matches!(symbol.flags(), object::SymbolFlags::Elf { st_info, .. } if st_info & 0xf == elf::STT_GNU_IFUNC)
}

fn hidden(symbol: &object::read::elf::ElfSymbol64<'_, '_, object::LittleEndian>) -> bool {
    let visibility = match symbol.flags() {
        object::SymbolFlags::Elf { st_other, .. } => st_other & 3,
        _ => 0,
    };
    visibility == elf::STV_HIDDEN || visibility == elf::STV_INTERNAL
}

/// The global and weak names `compiled` defines (with `addr` 0), read before linking so the dylib can
/// prepare an entry for each function.
pub fn definitions(compiled: &Compiled) -> Result<Vec<DefinedSymbol>> {
    let file = open(compiled)?;
    let mut out = Vec::new();
    for symbol in file.symbols() {
        if !is_definition(&symbol) {
            continue;
        }
        let name = symbol
            .name()
            .map_err(|e| Error::Object { module: compiled.name.clone(), message: e.to_string() })?;
        if name.is_empty() {
            continue;
        }
        out.push(DefinedSymbol {
            name: name.into(),
            addr: 0,
            weak: symbol.is_weak(),
            hidden: hidden(&symbol),
            is_function: symbol.kind() == object::SymbolKind::Text,
            ifunc: is_ifunc(&symbol),
            counting: false,
        });
    }
    out.extend(lazy_records(compiled, &file).into_iter().map(|r| DefinedSymbol {
        name: r.function.into(),
        addr: 0,
        weak: r.weak,
        hidden: r.hidden,
        is_function: true,
        ifunc: false,
        counting: false,
    }));
    Ok(out)
}

/// A module laid out and allocated, its definitions at their final addresses, its undefined names not yet
/// resolved: the first half of linking. A batch places every module before resolving any, so a name any
/// module of the batch defines is known to all of them, in any order and across cycles.
///
/// Dropping a `Placed` that was not finished gives its blocks back to the heap.
pub struct Placed<'a> {
    linker: Linker<'a>,
    layout: Layout,
    linked: Option<Linked>,
    heap: &'a Mutex<Heap>,
    object: &'a [u8],
    debug_object: bool,
}

/// Lays `compiled` out and allocates its blocks. References to a global function the module defines
/// itself go to the stub `own` gives for its name, if any (its entry), so that even the module's own calls
/// see a redefinition.
pub fn place<'a>(
    compiled: &'a Compiled,
    heap: &'a Mutex<Heap>,
    own: &dyn Fn(&str) -> Option<usize>,
    extras: Extras,
) -> Result<Placed<'a>> {
    let module = compiled.name.as_str();
    let bad = |m: String| Error::Object { module: module.to_string(), message: m };
    let file = open(compiled)?;
    let header = file.elf_header();
    let endian = file.endian();
    if header.e_machine.get(endian) != elf::EM_X86_64 {
        return Err(bad(format!("machine {} is not x86-64", header.e_machine.get(endian))));
    }
    if header.e_type.get(endian) != elf::ET_REL {
        return Err(bad("not a relocatable object (ET_REL)".to_string()));
    }
    let lazy = lazy_records(compiled, &file);
    let lazy_names: std::collections::HashSet<&str> = lazy.iter().map(|r| r.function).collect();
    let mut own_stubs = HashMap::new();
    for symbol in file.symbols() {
        let Ok(name) = symbol.name() else { continue };
        let defined = is_definition(&symbol) && symbol.kind() == object::SymbolKind::Text;
        if defined || (symbol.is_undefined() && lazy_names.contains(name)) {
            if let Some(stub) = own(name) {
                own_stubs.insert(symbol.index(), stub);
            }
        }
    }
    let (functions, relocs) = (extras.functions, extras.relocs);
    let linker = Linker { file, module, own: own_stubs, lazy, functions, relocs };
    let mut layout = linker.layout()?;
    linker.plan_got_and_stubs(&mut layout)?;
    let (code, data) = allocate(heap, &layout)?;
    let linked = Linked {
        code,
        data,
        symbols: Vec::new(),
        imports: Vec::new(),
        init: Vec::new(),
        fini: Vec::new(),
        eh_frame: None,
        relocs: Vec::new(),
        functions: Vec::new(),
        osr: Vec::new(),
        frames: stackmap::frames(&linker.file),
        debug_object: None,
    };
    let mut placed = Placed {
        linker,
        layout,
        linked: Some(linked),
        heap,
        object: &compiled.object,
        debug_object: extras.debug_object,
    };
    let linked = placed.linked.as_mut().expect("just placed");
    placed.linker.define(&placed.layout, linked)?;
    Ok(placed)
}

fn allocate(heap: &Mutex<Heap>, layout: &Layout) -> Result<(Option<Block>, Option<Block>)> {
    let mut heap = heap.lock();
    let mut code = None;
    if layout.code_len > 0 {
        code = Some(heap.alloc(Kind::Code, layout.code_len, layout.code_align).map_err(Error::Heap)?);
    }
    if layout.data_len > 0 {
        match heap.alloc(Kind::Data, layout.data_len, layout.data_align) {
            Ok(b) => return Ok((code, Some(b))),
            Err(e) => {
                code.into_iter().for_each(|b| heap.free(b));
                return Err(Error::Heap(e));
            }
        }
    }
    Ok((code, None))
}

impl Placed<'_> {
    /// The module's global and weak definitions, at their final addresses.
    pub fn symbols(&self) -> &[DefinedSymbol] {
        &self.linked.as_ref().expect("not finished").symbols
    }

    /// Resolves every undefined name through `resolve` (all missing names are reported together; weak
    /// undefined ones become 0), then copies the sections, fills GOT and stubs and applies every relocation.
    pub fn finish(mut self, resolve: &mut dyn FnMut(&str) -> Option<usize>) -> Result<Linked> {
        let (externals, imports) = self.linker.resolve(resolve)?;
        let linked = self.linked.as_mut().expect("not finished");
        linked.imports = imports;
        self.linker.fill(&self.layout, &externals, linked)?;
        if self.debug_object {
            linked.debug_object = Some(debug_object(self.object, &self.layout, linked));
        }
        Ok(self.linked.take().expect("not finished"))
    }
}

impl Drop for Placed<'_> {
    fn drop(&mut self) {
        if let Some(linked) = self.linked.take() {
            linked.discard(self.heap);
        }
    }
}

fn section_flags(section: &object::read::elf::ElfSection64<'_, '_, object::LittleEndian>) -> u64 {
    match section.flags() {
        object::SectionFlags::Elf { sh_flags } => sh_flags,
        _ => 0,
    }
}

impl<'a> Linker<'a> {
    fn unsupported(&self, what: String) -> Error {
        Error::Unsupported { module: self.module.to_string(), what }
    }

    fn bad(&self, message: String) -> Error {
        Error::Object { module: self.module.to_string(), message }
    }

    fn layout(&self) -> Result<Layout> {
        let mut layout = Layout {
            sections: HashMap::new(),
            commons: HashMap::new(),
            code_len: 0,
            data_len: 0,
            code_align: 16,
            data_align: 16,
            got: HashMap::new(),
            stubs: HashMap::new(),
            counting: HashMap::new(),
            lazy: Vec::new(),
            got_base: 0,
            eh_frame: None,
        };
        for section in self.relocatable_sections() {
            let flags = section_flags(&section);
            let name = section.name().unwrap_or("?");
            if flags & u64::from(elf::SHF_TLS) != 0 {
                return Err(
                    self.unsupported(format!("thread-local section `{name}` (compile from IR instead)"))
                );
            }
            let align = (section.align() as usize).max(1);
            if !align.is_power_of_two() || align > PAGE {
                return Err(self.unsupported(format!("alignment {align} of section `{name}`")));
            }
            let size = usize::try_from(section.size())
                .map_err(|_| self.bad(format!("section `{name}` too large")))?;
            if size > crate::heap::HEAP_SPAN / 2 {
                return Err(self.bad(format!("section `{name}` of {size} bytes does not fit the heap")));
            }
            let is_eh = name == ".eh_frame";
            let writable = flags & u64::from(elf::SHF_WRITE) != 0;
            if writable && flags & u64::from(elf::SHF_EXECINSTR) != 0 {
                // Code genjit would have to place in memory that is writable and executable at once; its
                // heap never has such memory (W^X), and placing it as data would make every call fault.
                return Err(self.unsupported(format!(
                    "section `{name}` is both writable and executable (\"awx\"); genjit's heap is W^X"
                )));
            }
            let kind = if writable { Kind::Data } else { Kind::Code };
            let (len, max_align) = match kind {
                Kind::Code => (&mut layout.code_len, &mut layout.code_align),
                Kind::Data => (&mut layout.data_len, &mut layout.data_align),
            };
            let offset = align_up(*len, align);
            *len = offset + size + if is_eh { 4 } else { 0 };
            *max_align = (*max_align).max(align);
            if is_eh {
                if layout.eh_frame.is_some() {
                    return Err(self.unsupported("more than one .eh_frame section".to_string()));
                }
                layout.eh_frame = Some(offset);
            }
            layout.sections.insert(section.index(), Placement { kind, offset, size });
        }
        for symbol in self.file.symbols() {
            if symbol.section() == SymbolSection::Common {
                let align = (symbol.address() as usize).max(1);
                if !align.is_power_of_two() || align > PAGE {
                    return Err(self.unsupported(format!("common symbol alignment {align}")));
                }
                let size = usize::try_from(symbol.size()).ok().filter(|&s| s <= crate::heap::HEAP_SPAN / 2);
                let size =
                    size.ok_or_else(|| self.bad(format!("common symbol of {} bytes", symbol.size())))?;
                let offset = align_up(layout.data_len, align);
                layout.data_len = offset + size;
                if layout.data_len > crate::heap::HEAP_SPAN / 2 {
                    return Err(self.bad("common symbols do not fit the heap".to_string()));
                }
                layout.data_align = layout.data_align.max(align);
                layout.commons.insert(symbol.index(), offset);
            }
        }
        Ok(layout)
    }

    /// Resolves every undefined symbol; returns their addresses by symbol index and the import names.
    fn resolve(
        &self,
        resolve: &mut dyn FnMut(&str) -> Option<usize>,
    ) -> Result<(HashMap<SymbolIndex, usize>, Vec<String>)> {
        let mut addrs = HashMap::new();
        let mut imports = Vec::new();
        let mut missing = Vec::new();
        for symbol in self.file.symbols() {
            // A lazy function is the module's own (its entry), like its defined functions.
            if !symbol.is_undefined() || symbol.index().0 == 0 || self.own.contains_key(&symbol.index()) {
                continue;
            }
            let name = symbol.name().map_err(|e| self.bad(e.to_string()))?;
            if name.is_empty() {
                continue;
            }
            match resolve(name) {
                Some(addr) => {
                    addrs.insert(symbol.index(), addr);
                    imports.push(name.to_string());
                }
                None if symbol.is_weak() => {
                    addrs.insert(symbol.index(), 0);
                }
                None => missing.push(name.to_string()),
            }
        }
        if !missing.is_empty() {
            return Err(Error::UnresolvedSymbols {
                module: self.module.to_string(),
                dylib: String::new(),
                symbols: missing,
            });
        }
        Ok((addrs, imports))
    }

    fn relocatable_sections(
        &self,
    ) -> impl Iterator<Item = object::read::elf::ElfSection64<'a, '_, object::LittleEndian>> + '_ {
        // Stack maps are read (`stackmap`), not placed.
        self.file.sections().filter(|s| {
            section_flags(s) & u64::from(elf::SHF_ALLOC) != 0
                && s.size() > 0
                && !s.name().is_ok_and(|n| n == stackmap::SECTION)
        })
    }

    fn plan_got_and_stubs(&self, layout: &mut Layout) -> Result<()> {
        let mut got = Vec::new();
        let mut stubs = Vec::new();
        for section in self.relocatable_sections() {
            for (_, reloc) in section.relocations() {
                let RelocationFlags::Elf { r_type } = reloc.flags() else { continue };
                let RelocationTarget::Symbol(sym) = reloc.target() else { continue };
                if is_got_reloc(r_type) && !got.contains(&sym) {
                    got.push(sym);
                }
                let undefined = self.file.symbol_by_index(sym).map(|s| s.is_undefined()).unwrap_or(false);
                let own = self.own.contains_key(&sym);
                if r_type == elf::R_X86_64_PLT32 && undefined && !own && !stubs.contains(&sym) {
                    stubs.push(sym);
                }
            }
        }
        layout.got_base = align_up(layout.code_len, 8);
        for (i, sym) in got.into_iter().enumerate() {
            layout.got.insert(sym, layout.got_base + 8 * i);
        }
        let stub_base = align_up(layout.got_base + 8 * layout.got.len(), 16);
        for (i, sym) in stubs.into_iter().enumerate() {
            layout.stubs.insert(sym, stub_base + 16 * i);
        }
        layout.code_len = stub_base + 16 * layout.stubs.len();
        // A first-tier function with a call counter `__gjc.<tag>.<name>` gets a counting stub, which its
        // entry leads to first (`sys::stubs`).
        // Counters first: a module that is not first-tier (every module of an untiered dylib) has none,
        // and its functions need no look-up.
        let defined = |kind| self.file.symbols().filter(move |s| is_definition(s) && s.kind() == kind);
        let counters: HashMap<&str, SymbolIndex> = defined(object::SymbolKind::Data)
            .filter_map(|s| match crate::compile::tier::counter_of(s.name().ok()?)? {
                (function, crate::compile::tier::Counted::Calls) => Some((function, s.index())),
                _ => None,
            })
            .collect();
        let counted: Vec<(SymbolIndex, SymbolIndex)> = match counters.is_empty() {
            true => Vec::new(),
            false => defined(object::SymbolKind::Text)
                .filter_map(|f| Some((f.index(), *counters.get(f.name().ok()?)?)))
                .collect(),
        };
        for (f, counter) in counted {
            layout.counting.insert(f, (layout.code_len, counter));
            layout.code_len += crate::sys::stubs::STUB_LEN;
        }
        for _ in &self.lazy {
            layout.lazy.push(layout.code_len);
            layout.code_len += crate::sys::stubs::LAZY_STUB_LEN;
        }
        Ok(())
    }
}

mod apply;
mod stackmap;
