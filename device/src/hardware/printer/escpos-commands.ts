/**
 * The shape of every ESC/POS command an Epson TM-T88 / TM-T20-class printer
 * accepts: how many parameter bytes follow the command byte, or how its data is
 * framed. The printer simulator consumes each command whole by this table, so a
 * command it does not act on (beeper, tab positions, user-defined characters,
 * NV images...) never leaks a parameter byte into the printed text.
 *
 * Sources: Epson "ESC/POS Command Reference" (TM printers), plus the few
 * non-Epson commands common encoders send (ESC 4 italic from
 * receipt-printer-encoder, ESC B beeper and GS | density from node-thermal-printer).
 */

/**
 * A fixed count of parameter bytes, or how the data is framed:
 * - paren: `fn pL pH` then pL + pH*256 bytes (GS ( x, ESC ( x, FS ( x);
 * - special: parsed by the simulator (its length depends on its parameters).
 */
export type Shape = number | "paren" | "special";

export const ESC_COMMANDS: Readonly<Record<number, Shape>> = {
  12: 0, // FF  print data in page mode
  32: 1, // SP  right-side character spacing
  33: 1, // !   print mode
  36: 2, // $   absolute print position
  37: 1, // %   user-defined character set on/off
  38: "special", // &   define user-defined characters: y c1 c2 [x d1..d(y*x)]...
  40: "paren", // ( A beeper, ( Y ...
  42: "special", // *   bit image: m nL nH d1..dk
  45: 1, // -   underline
  50: 0, // 2   default line spacing
  51: 1, // 3   line spacing
  52: 1, // 4   italic (not Epson; receipt-printer-encoder sends it)
  60: 0, // <   return home
  61: 1, // =   select peripheral device
  63: 1, // ?   cancel user-defined character
  64: 0, // @   initialise
  66: 2, // B   beeper n t (node-thermal-printer)
  68: "special", // D   horizontal tab positions: n1..nk NUL
  69: 1, // E   emphasis
  71: 1, // G   double-strike
  74: 1, // J   print and feed n dots
  75: 1, // K   print and reverse feed
  76: 0, // L   page mode
  77: 1, // M   font
  82: 1, // R   international character set
  83: 0, // S   standard mode
  84: 1, // T   page mode print direction
  85: 1, // U   unidirectional printing
  86: 1, // V   90° rotation
  87: 8, // W   page mode print area
  92: 2, // \   relative print position
  97: 1, // a   justification
  99: 2, // c   3/4/5 n: paper sensors, panel buttons
  100: 1, // d   print and feed n lines
  101: 1, // e   print and reverse feed n lines
  105: 0, // i   partial cut (obsolete)
  109: 0, // m   partial cut (obsolete)
  112: 3, // p   drawer kick pulse m t1 t2
  114: 1, // r   print colour
  116: 1, // t   character code table
  117: 1, // u   transmit peripheral status
  118: 0, // v   transmit paper sensor status (obsolete)
  123: 1, // {   upside-down
};

export const GS_COMMANDS: Readonly<Record<number, Shape>> = {
  33: 1, // !   character size
  36: 2, // $   page mode vertical position
  40: "paren", // ( A/C/D/E/H/K/L/M/N/P/Q/k/z...
  42: "special", // *   define downloaded bit image: x y d1..d(x*y*8)
  47: 1, // /   print downloaded bit image
  56: "special", // 8 L / 8 k: like GS ( but with a 4-byte length
  58: 0, // :   macro definition start/end
  66: 1, // B   white/black reverse
  69: 1, // E   print density (some models)
  72: 1, // H   HRI position
  73: 1, // I   transmit printer ID
  76: 2, // L   left margin
  80: 2, // P   motion units
  84: 1, // T   print position to the start of the line
  86: "special", // V   cut: m [n]
  87: 2, // W   print area width
  92: 2, // \   page mode relative vertical position
  94: 3, // ^   execute macro
  97: 1, // a   automatic status back
  98: 1, // b   smoothing
  99: 0, // c   print counter (obsolete)
  102: 1, // f   HRI font
  103: 4, // g   0/2 m nL nH: maintenance counter
  104: 1, // h   barcode height
  106: 1, // j   automatic status back (ink)
  107: "special", // k   barcode: m d1..dk NUL, or m n d1..dn
  114: 1, // r   transmit status
  118: "special", // v 0 m xL xH yL yH d1..dk: raster bit image
  119: 1, // w   barcode module width
  122: 3, // z 0 t1 t2: online recovery wait
  124: 1, // |   print density (node-thermal-printer)
};

export const DLE_COMMANDS: Readonly<Record<number, Shape>> = {
  4: "special", // EOT n [a]: real-time status (n 7 and 8 take one more byte)
  5: 1, // ENQ n: real-time request
  20: "special", // DC4 fn ...: real-time pulse, power off, clear buffer...
};

export const FS_COMMANDS: Readonly<Record<number, Shape>> = {
  33: 1, // !   Kanji print mode
  38: 0, // &   Kanji mode on
  40: "paren", // ( A/C/E/L/e
  45: 1, // -   Kanji underline
  46: 0, // .   Kanji mode off (receipt-printer-encoder starts every job with it)
  50: "special", // 2 c1 c2 d1..d72: define a user-defined Kanji character
  63: 2, // ?   cancel a user-defined Kanji character
  67: 1, // C   Kanji code system
  83: 2, // S   Kanji spacing
  87: 1, // W   Kanji quadruple size
  103: "special", // g 1/2: NV user memory
  112: 2, // p   print NV bit image n m
  113: "special", // q   define NV bit images
};

/** DLE DC4 fn: parameter bytes after fn. */
export const DLE_DC4_ARGS: Readonly<Record<number, number>> = { 1: 2, 2: 2, 3: 2, 7: 1, 8: 7 };

/** GS k barcode systems: m 0-6 (function A, NUL-terminated), 65-79 (function B, with a length). */
export const BARCODE_SYSTEMS: Readonly<Record<number, string>> = {
  0: "UPC-A",
  1: "UPC-E",
  2: "EAN13",
  3: "EAN8",
  4: "CODE39",
  5: "ITF",
  6: "CODABAR",
  65: "UPC-A",
  66: "UPC-E",
  67: "EAN13",
  68: "EAN8",
  69: "CODE39",
  70: "ITF",
  71: "CODABAR",
  72: "CODE93",
  73: "CODE128",
  74: "GS1-128",
  75: "GS1-DATABAR-OMNI",
  76: "GS1-DATABAR-TRUNCATED",
  77: "GS1-DATABAR-LIMITED",
  78: "GS1-DATABAR-EXPANDED",
  79: "CODE128",
};

/** GS ( k symbol types (cn) other than QR (49), each stored with fn 80 and printed with fn 81. */
export const SYMBOLS_2D: Readonly<Record<number, string>> = {
  48: "PDF417",
  50: "MAXICODE",
  51: "GS1-DATABAR-2D",
  52: "COMPOSITE",
  53: "AZTEC",
  54: "DATAMATRIX",
};
