//! A text console on the bootloader's linear framebuffer: the node's screen (the
//! SiON paper's "video" device). It mirrors the console; glyphs come from the
//! `noto-sans-mono-bitmap` crate.

use bootloader_api::info::{FrameBufferInfo, PixelFormat};
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};
use spin::Mutex;

const GLYPH_HEIGHT: RasterHeight = RasterHeight::Size16;
const LINE_HEIGHT: usize = GLYPH_HEIGHT.val() + 2;
const MARGIN: usize = 4;

struct FrameBufferConsole {
    buffer: &'static mut [u8],
    info: FrameBufferInfo,
    glyph_width: usize,
    col: usize,
    row: usize,
}

static FBCON: Mutex<Option<FrameBufferConsole>> = Mutex::new(None);

/// Takes over the framebuffer as a text console and clears it.
pub fn init(buffer: &'static mut [u8], info: FrameBufferInfo) {
    buffer.fill(0);
    let glyph_width = get_raster_width(FontWeight::Regular, GLYPH_HEIGHT);
    *FBCON.lock() = Some(FrameBufferConsole {
        buffer,
        info,
        glyph_width,
        col: 0,
        row: 0,
    });
}

/// Writes text to the screen, scrolling at the bottom. Does nothing when the
/// boot gave no framebuffer.
pub fn write_str(s: &str) {
    if let Some(con) = FBCON.lock().as_mut() {
        for c in s.chars() {
            con.put_char(c);
        }
    }
}

/// Releases the screen's lock after a fault that may have interrupted a
/// writer. Only for the panic and fault paths, where the interrupted code
/// never resumes: callers are on the way to halting the machine.
pub fn force_unlock() {
    // SAFETY: called only on the way to halting the machine; the holder of the
    // lock never resumes.
    unsafe { FBCON.force_unlock() };
}

impl FrameBufferConsole {
    fn cols(&self) -> usize {
        (self.info.width - 2 * MARGIN) / self.glyph_width
    }

    fn rows(&self) -> usize {
        (self.info.height - 2 * MARGIN) / LINE_HEIGHT
    }

    fn put_char(&mut self, c: char) {
        match c {
            '\n' => self.newline(),
            '\r' => self.col = 0,
            c => {
                if self.col >= self.cols() {
                    self.newline();
                }
                let x = MARGIN + self.col * self.glyph_width;
                let y = MARGIN + self.row * LINE_HEIGHT;
                self.draw_glyph(c, x, y);
                self.col += 1;
            }
        }
    }

    fn newline(&mut self) {
        self.col = 0;
        if self.row + 1 < self.rows() {
            self.row += 1;
            return;
        }
        // Jump scroll: move the lower half of the screen up and go on below
        // it. Moving the whole picture (2.7 MB at 1280x720) for every line
        // is slow under QEMU's TCG and took that time from the running job
        // whenever a manager printed; half a screen at a time makes one such
        // copy per half screen of lines instead of one per line.
        let jump = (self.rows() / 2).max(1);
        let line_bytes = LINE_HEIGHT * self.info.stride * self.info.bytes_per_pixel;
        let start = MARGIN * self.info.stride * self.info.bytes_per_pixel;
        let end = start + self.rows() * line_bytes;
        self.buffer
            .copy_within(start + jump * line_bytes..end, start);
        self.buffer[end - jump * line_bytes..end].fill(0);
        self.row = self.rows() - jump;
    }

    fn draw_glyph(&mut self, c: char, x: usize, y: usize) {
        let raster = get_raster(c, FontWeight::Regular, GLYPH_HEIGHT)
            .or_else(|| get_raster('?', FontWeight::Regular, GLYPH_HEIGHT));
        let Some(raster) = raster else { return };
        for (dy, row) in raster.raster().iter().enumerate() {
            for (dx, &intensity) in row.iter().enumerate() {
                self.put_pixel(x + dx, y + dy, intensity);
            }
        }
    }

    fn put_pixel(&mut self, x: usize, y: usize, intensity: u8) {
        let bpp = self.info.bytes_per_pixel;
        let offset = (y * self.info.stride + x) * bpp;
        let color: [u8; 4] = match self.info.pixel_format {
            PixelFormat::U8 => [if intensity > 128 { 0xff } else { 0 }, 0, 0, 0],
            // Grey text: the same value in every colour channel, whatever the order.
            _ => [intensity, intensity, intensity, 0],
        };
        if let Some(px) = self.buffer.get_mut(offset..offset + bpp) {
            let n = bpp.min(4);
            px[..n].copy_from_slice(&color[..n]);
        }
    }
}
