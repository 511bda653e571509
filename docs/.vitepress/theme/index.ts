/**
 * The default theme, plus Mermaid: each ```mermaid block arrives as
 * `<pre class="mermaid">` (config.ts) and is drawn here in the browser, after
 * each page is shown, one page's blocks at a time through one queue (Mermaid's
 * own `run`, which gives each diagram its own id). Drawing blocks of one page
 * concurrently, as vitepress-plugin-mermaid does on every attribute change of
 * <html>, drew some of them as Mermaid's "Syntax error" picture at random.
 */
import { type Theme, useRoute } from "vitepress";
import DefaultTheme from "vitepress/theme";
import { nextTick, onMounted, watch } from "vue";

let queue: Promise<void> = Promise.resolve();

async function drawDiagrams(): Promise<void> {
  const blocks = [...document.querySelectorAll<HTMLElement>("pre.mermaid:not([data-processed])")];
  if (blocks.length === 0) return;
  const { default: mermaid } = await import("mermaid");
  mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
  await mermaid.run({ nodes: blocks });
}

const theme: Theme = {
  extends: DefaultTheme,
  setup() {
    const route = useRoute();
    const draw = () => {
      queue = queue
        .then(() => nextTick())
        .then(drawDiagrams)
        .catch((err: unknown) => console.error("mermaid:", err));
    };
    onMounted(draw);
    watch(() => route.path, draw);
  },
};

export default theme;
