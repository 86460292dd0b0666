// The view state lives in location.hash (data/urlstate.ts). Links change it the browser's way
// (a new history entry, "hashchange"); typing in the search box replaces the current entry
// instead, so Back does not step through every keystroke.

import { useSyncExternalStore } from "react";

const EVENT = "llem:navigate";

function subscribe(cb: () => void): () => void {
  window.addEventListener("hashchange", cb);
  window.addEventListener("popstate", cb);
  window.addEventListener(EVENT, cb);
  return () => {
    window.removeEventListener("hashchange", cb);
    window.removeEventListener("popstate", cb);
    window.removeEventListener(EVENT, cb);
  };
}

export function useHash(): string {
  return useSyncExternalStore(subscribe, () => window.location.hash, () => "");
}

/** Go to `hash` ("#/..."): a new history entry, or (replace) the current one. */
export function navigate(hash: string, replace = false): void {
  if (hash === window.location.hash) return;
  if (replace) {
    window.history.replaceState(window.history.state, "", hash);
    window.dispatchEvent(new Event(EVENT));
  } else {
    window.location.hash = hash; // fires hashchange
  }
}
