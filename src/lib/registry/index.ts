export * from './device.js'
export * from './store.js'
export {detectFormat, importChunks, parseImport, type ImportChunk, type ImportFormat, type ParsedRow} from './import-parse.js'
export {importDevices, ON_CONFLICT, type ImportResult, type OnConflict} from './import-store.js'
