export { checkProjectionDefinition, defineProjection, isProjection, type DefinitionCheck } from './defineProjection.js';
export { compileYamlProjection } from './compileYamlProjection.js';
export { compileNamedParameters, splitSqlStatements, type NamedParameters } from './sqlLexer.js';
export { handlerFor } from './handlerFor.js';
export { loadProjectionFile, loadProjections } from './loadProjections.js';
export * from './types.js';
