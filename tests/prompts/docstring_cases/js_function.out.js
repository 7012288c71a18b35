"use strict";

/**
 * Debounce a function.
 *
 * @param {*} fn - The function to call.
 * @param {number} [wait=100] - Milliseconds to wait.
 * @returns The debounced function.
 */
function debounce(fn, wait = 100) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}
