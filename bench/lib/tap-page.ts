/**
 * The kiosk UI in Chromium, watched for the moment each result is on screen.
 *
 * A MutationObserver in the page follows the `paylane-kiosk` shadow root and
 * the result screen's own shadow root; whenever the shown (screen, message)
 * pair changes it stamps the time the DOM holds it, then again in the next
 * requestAnimationFrame (the frame that paints it), both as
 * performance.timeOrigin + performance.now() — the expression the Node side
 * stamps the simulator's frame with — and hands them over through an exposed
 * function, so only the hand-over, not the stamps, pays for the CDP round trip.
 */
import type { Browser, Page } from "playwright-core";
import { clock } from "./tap-reader.ts";

export type Screen = "welcome" | "unknown" | "already" | "refused" | "attract";

export interface Shown {
  /** When the DOM first held the result (the MutationObserver's callback). */
  dom: number;
  /** The start of the next animation frame after that: the frame that paints it. */
  frame: number;
}

const REPORT = "__paylaneShown";

// A string, not a function: evaluated as written (the transpiler's helpers do not exist in the page).
const OBSERVER = `(() => {
  const clock = () => performance.timeOrigin + performance.now();
  const kiosk = document.querySelector("paylane-kiosk");
  const root = kiosk && kiosk.shadowRoot;
  if (!root) throw new Error("the page has no paylane-kiosk with a shadow root");
  const opts = { subtree: true, childList: true, characterData: true, attributes: true };
  const watched = new WeakSet();
  let last = "";
  const observer = new MutationObserver(() => {
    const dom = clock();
    const main = root.querySelector('main[data-testid="screen"]');
    const screen = (main && main.getAttribute("data-screen")) || "";
    const resultScreen = main && main.querySelector("paylane-result-screen");
    const inner = resultScreen && resultScreen.shadowRoot;
    // Lit keeps the result screen across results; a new one (after the attract screen) is watched too.
    if (inner && !watched.has(inner)) {
      watched.add(inner);
      observer.observe(inner, opts);
    }
    const message = inner && inner.querySelector('[data-testid="message"]');
    const text = message ? message.textContent.trim() : "";
    const key = screen + "\\n" + text;
    if (key === last) return;
    last = key;
    requestAnimationFrame(() => void window.${REPORT}(screen, text, dom, clock()));
  });
  observer.observe(root, opts);
})()`;

/** One kiosk page: open it, arm `shown()` before a tap, read its clock. */
export class KioskPage {
  readonly #browser: Browser;
  #page: Page | undefined;
  #waiting: { screen: Screen; text: string; resolve: (s: Shown) => void } | undefined;
  readonly errors: string[] = [];

  constructor(browser: Browser) {
    this.#browser = browser;
  }

  /** Loads the kiosk UI from `url`, waits for the attract screen and starts watching. */
  async open(url: string): Promise<void> {
    const page = await this.#browser.newPage({ viewport: { width: 800, height: 480 } });
    this.#page = page;
    page.on("pageerror", (err) => this.errors.push(err.message));
    await page.exposeFunction(REPORT, (screen: string, text: string, dom: number, frame: number) => {
      const w = this.#waiting;
      if (w && w.screen === screen && w.text === text) {
        this.#waiting = undefined;
        w.resolve({ dom, frame });
      }
    });
    await page.goto(url);
    await page.locator('[data-testid="screen"][data-screen="attract"]').waitFor({ timeout: 10_000 });
    await page.evaluate(OBSERVER);
  }

  /**
   * Resolves when the page next shows `screen` with exactly `text`. Arm it
   * before the tap; the caller makes consecutive taps differ in what they show.
   */
  shown(screen: Screen, text: string): Promise<Shown> {
    return new Promise((resolve) => {
      this.#waiting = { screen, text, resolve };
    });
  }

  /**
   * The page clock minus the Node clock, from the shortest of `rounds`
   * evaluate round trips; `uncertainty` is half that round trip.
   */
  async clockOffset(rounds = 20): Promise<{ offset: number; uncertainty: number }> {
    const page = this.#page;
    if (!page) throw new Error("KioskPage is not open");
    let best = { offset: Number.NaN, uncertainty: Number.POSITIVE_INFINITY };
    for (let i = 0; i < rounds; i++) {
      const t0 = clock();
      const p = await page.evaluate("performance.timeOrigin + performance.now()");
      const t1 = clock();
      if (typeof p !== "number") throw new Error(`the page clock read ${String(p)}, expected a number`);
      if ((t1 - t0) / 2 < best.uncertainty) best = { offset: p - (t0 + t1) / 2, uncertainty: (t1 - t0) / 2 };
    }
    return best;
  }

  async close(): Promise<void> {
    this.#waiting = undefined;
    await this.#page?.close();
    this.#page = undefined;
  }
}
