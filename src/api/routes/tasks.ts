import type { Router } from '../router';
import { parseFilters } from '../../common/filters';
import { TASK_FILTERS } from '../../manager/controlapi/tasks';
import type { SwarmMembership } from './membership';

export function registerTaskRoutes(router: Router, swarm: SwarmMembership): void {
  router.on('GET', '/tasks', async (req) => ({
    status: 200,
    body: swarm.control().tasks.list(parseFilters(req.query.get('filters'), TASK_FILTERS)),
  }));
  router.on('GET', '/tasks/:id', async (req) => ({ status: 200, body: swarm.control().tasks.inspect(req.params.id!) }));
}
