export {initCa, MIN_PASSPHRASE_LENGTH} from './ca.js'
export {showCa, type CertInfo} from './ca-files.js'
export {KEY_TYPES, type KeyType} from './keys.js'
export {DEFAULT_DAYS, type IssuedCertificate} from './issue.js'
export {REVOCATION_REASONS, revokeDeviceCertificates, type CertificateRecord, type RevocationReason} from './store.js'
export {
  assertReason, deviceIssuer, issueDeviceCertificates, type DeviceIssuer, issueOperatorCertificate, listCertificates, normaliseSerial, publishCrls,
  revokeCertificates, rotateDeviceCertificate, supersedePredecessors, sweepSuperseded, type PkiOptions,
} from './certificates.js'
export {writeIssued} from './output-files.js'
