export { checkProjectionDefinition, defineProjection, isProjection, type DefinitionCheck } from './defineProjection.js';
export {
  compileNamedParameters,
  compileYamlProjection,
  splitSqlStatements,
  type NamedParameters,
} from './compileYamlProjection.js';
export { handlerFor } from './handlerFor.js';
export { loadProjectionFile, loadProjections } from './loadProjections.js';
export * from './types.js';
