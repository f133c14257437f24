import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

/**
 * Calls `onChange` after any of `files` changes. Watches the directories, not the files:
 * editors, `mv` and Kubernetes secret updates replace a file (a new inode) rather than
 * writing it in place, which a watch on the file itself stops seeing. Bursts of events (a
 * truncate then a write) are coalesced into one call after `settleMs`.
 */
export function watchFiles(files: string[], onChange: () => void, settleMs = 100): () => void {
  const byDir = new Map<string, Set<string>>();
  for (const file of files) {
    const full = resolve(file);
    const dir = dirname(full);
    if (!byDir.has(dir)) byDir.set(dir, new Set());
    byDir.get(dir)!.add(basename(full));
  }
  let timer: NodeJS.Timeout | undefined;
  const changed = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      onChange();
    }, settleMs);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of byDir) {
    const w = watch(dir, { persistent: false }, (_event, name) => {
      // Some platforms omit the name; then any change in the directory counts.
      if (!name || names.has(name.toString()) || name.toString().startsWith('..')) changed();
    });
    // A watcher error (the directory vanished) must not crash the broker; SIGHUP still reloads.
    w.on('error', () => w.close());
    watchers.push(w);
  }
  return () => {
    if (timer) clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
