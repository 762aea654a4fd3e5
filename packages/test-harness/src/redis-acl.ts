/**
 * ACL users for tests of a store's setup mistakes on the local Redis Cluster (`startRedisCluster`):
 * set on every node, as an ACL on a Cluster must be, and deleted once the test is over.
 */

import { randomBytes } from "node:crypto";
import { onTestFinished } from "vitest";
import { type RedisNode, redisCommand } from "./redis.js";

/** The password every user made here has. */
export const ACL_USER_PASSWORD = "user-pw";

/**
 * An ACL user of its own, named from `label`, on every node of the cluster, with `rules`
 * (`~prefix*`, `+eval`, …) and `ACL_USER_PASSWORD`; deleted after the test. Resolves to its name.
 */
export async function clusterAclUser(nodes: readonly RedisNode[], label: string, rules: string[]): Promise<string> {
  const name = `${label}_${process.pid}_${randomBytes(4).toString("hex")}`;
  const onEveryNode = (args: string[]) => Promise.all(nodes.map((node) => redisCommand(node.port, args, node.host)));
  await onEveryNode(["ACL", "SETUSER", name, "reset", "on", `>${ACL_USER_PASSWORD}`, ...rules]);
  onTestFinished(async () => {
    await onEveryNode(["ACL", "DELUSER", name]);
  });
  return name;
}
