import { Command } from 'commander';
import { ListWorkersRequest } from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { addConnectionOptions, examples, out, withSession } from './connection.js';
import { ago, count, json, table } from './output.js';
import { date, workerView } from './views.js';

export function workersCommand(): Command {
  const workers = new Command('workers').description('connected worker streams: queues, unused credit, jobs in flight, last heartbeat');
  addConnectionOptions(workers);
  examples(workers, 'sluice workers', 'sluice workers --json | jq ".workers[] | {workerId, active: (.activeJobIds | length)}"');
  return withSession(workers, async (session, flags) => {
    const res = await session.call(session.admin, session.admin.listWorkers, ListWorkersRequest.fromPartial({}));
    const views = res.workers.map(workerView);
    if (flags.json) {
      out(json({ workers: views }));
      return;
    }
    if (views.length === 0) {
      process.stderr.write('no workers connected\n');
      return;
    }
    out(
      table(views, [
        { header: 'WORKER', value: (w) => w.workerId },
        { header: 'STREAM', value: (w) => w.streamId },
        { header: 'QUEUES', value: (w) => w.queues.join(',') },
        { header: 'TYPES', value: (w) => w.types.join(',') },
        { header: 'CREDIT', value: (w) => count(w.credit), right: true },
        { header: 'ACTIVE', value: (w) => count(w.activeJobIds.length), right: true },
        { header: 'CONNECTED', value: (w) => ago(date(w.connectedAt)) },
        { header: 'LAST SEEN', value: (w) => ago(date(w.lastSeenAt)) },
        { header: 'PEER', value: (w) => w.peer ?? '' },
      ]),
    );
  });
}
