import { css } from "lit";

/**
 * Buttons for a finger at arm's length: at least 64 px high, pressed look,
 * visible focus. `primary` is the one thing the screen wants done.
 */
export const touchStyles = css`
  button {
    min-height: 64px;
    min-width: 64px;
    padding: 0 1.25rem;
    box-sizing: border-box;
    font: inherit;
    font-size: clamp(1.25rem, 3vw, 1.75rem);
    font-weight: 700;
    border: 2px solid #888;
    border-radius: 8px;
    background: #1c1c1c;
    color: #fff;
    cursor: pointer;
    touch-action: manipulation;
  }
  button.primary {
    border-color: #4cc2ff;
    background: #4cc2ff;
    color: #000;
  }
  button:active:not(:disabled) {
    transform: scale(0.98);
  }
  button:disabled {
    opacity: 0.6;
    cursor: default;
  }
  button:focus-visible {
    outline: 4px solid #4cc2ff;
    outline-offset: 2px;
  }
  .error {
    margin: 0;
    color: #ff8a80;
    font-size: clamp(1rem, 2.5vw, 1.5rem);
    font-weight: 600;
  }
`;

/**
 * A page of payment choices (the price list, the amount keypad): black, a
 * column under a title, padded clear of the screen's edges. Each page sets
 * its own `gap`.
 */
export const choicePageStyles = css`
  :host {
    display: flex;
    flex-direction: column;
    height: 100%;
    box-sizing: border-box;
    padding: clamp(0.5rem, 2vh, 1rem) clamp(0.75rem, 3vw, 2rem);
    background: #000;
    color: #fff;
  }
  h1 {
    margin: 0;
    font-size: clamp(1.5rem, 4.5vw, 2.75rem);
    font-weight: 800;
  }
`;

/**
 * The declarations of a message screen's one column (tap, pay, result),
 * centred and clear of the screen's sides; `safe`: an overlong message pushes
 * down, never off the top. Each screen sets its own `gap`.
 */
export const centredColumn = css`
  display: flex;
  flex-direction: column;
  align-items: center;
  justify-content: safe center;
  height: 100%;
  padding: 0 5vw;
  box-sizing: border-box;
  text-align: center;
`;
