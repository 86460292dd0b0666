// The data starts loading before anything else runs (main.tsx imports this module first): the
// fetches go out while React starts, instead of after the first render of an empty page.

import { DATA_META, dataUrlSetting, loadDataset } from "./data/load";
import type { Dataset } from "./data/types";

const meta = document.querySelector(`meta[name="${DATA_META}"]`)?.getAttribute("content") ?? null;

/** Where the data is read from (and a note when a ?data= was refused). */
export const setting = dataUrlSetting(window.location.href, meta);

performance.mark("llem:load-start");
export const dataset: Promise<Dataset> = loadDataset(setting.url);
