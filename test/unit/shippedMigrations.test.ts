import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, readMigrations } from '../../src/store/migrate.js';

// A shipped migration never changes: a database that ran it keeps what the file said then, so
// an edit would give new and old databases different schemas under the same id. Change the
// schema with a new migration instead, and pin it here when it ships
// (`sha256sum migrations/NNNN_name.sql`).
const SHIPPED: Record<string, string> = {
  '0001_events': '734295b8e7cd9e4d8fcd5e5cf085d081b278464cc0a900862925b07e855ff5a2',
  '0002_checkpoints': '7197acf81feabd0e5d66852722a0154026e0cb623451fcc1e66e7c5efe1c6540',
  '0003_failed_events': '7408d0f41a4370f6049e6153d0d75f987dfb3c449b19ed323c497023c88b3736',
  '0004_append_triggers': 'fce6e1d2dcbbfb6419ceaa29a0a9ef1aca44b031f35efe07d5570e22030cf8b9',
  '0005_checkpoint_selection': '4fe3f58ffb651ba40f96d8e3864a4b8086c4dbdfab25658d651a06f1e8d924e8',
  '0006_stream_part': 'e249fe0ac0cf3c62fb1170075e687d1caa2b793763cb6928f218ff2ed4cbdf33',
  '0007_partitions': '50f5c108d9f8a2e581d507fa51821e9402735975388562133ad46d306e62a688',
  '0008_batch_events': '74a3d2c90365896a7f47ed34b16a4c01fab6440b2ccebf51e4e6325ffca88131',
  '0009_schema_versions': '90b43b5ac577b1b2cf33843087818856c51436ded4119400f0c8efefc33023f7',
  '0010_adopted_table': 'dea1449286795a01b48f85e0db28ae9c3a42fcb6cae30d1361d51d25fdff177a',
  '0011_batch_events_settings_once': '42ecc3ed7f7ad65f71e945537fe91c0b3351162bc3a40a09ae2ee82bb6b5b85a',
  '0012_batches_append_no_events': '2798abb29db76d970c227231aef87d34cb8c56f9abde175cd714960074928b9b',
  '0013_wake_on_demand': '7995ab886ac62dacd10ed064c9021bacec8f7e3dc084e66da9a3635d15396991',
};

async function sha256(id: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path.join(MIGRATIONS_DIR, `${id}.sql`)))
    .digest('hex');
}

describe('shipped migrations', () => {
  it.each(Object.entries(SHIPPED))('%s is byte for byte the file that shipped', async (id, checksum) => {
    expect(await sha256(id), `migrations/${id}.sql was edited after it shipped; add a new migration instead`).toBe(checksum);
  });

  it('are every migration in the folder: a new one is pinned here', async () => {
    const ids = (await readMigrations()).map((migration) => migration.id);
    expect(ids).toEqual(Object.keys(SHIPPED));
  });
});
