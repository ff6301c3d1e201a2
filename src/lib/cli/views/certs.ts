import type {View} from '../output.js'
import type {CertificateRecord, CertInfo} from '../../pki/index.js'

export const caView: View<CertInfo> = {
  rows: (r) => r as CertInfo[],
  name: (c) => `ca/${c.role}`,
  columns: [
    {header: 'ROLE', get: (c) => c.role},
    {header: 'SUBJECT', get: (c) => c.subject},
    {header: 'KEY', get: (c) => c.key},
    {header: 'NOT_AFTER', get: (c) => c.not_after},
    {header: 'SHA256', get: (c) => c.sha256},
  ],
}

export const certificateColumns: View<CertificateRecord>['columns'] = [
  {header: 'SERIAL', get: (c) => c.serial},
  {header: 'SUBJECT', get: (c) => c.subject_name},
  {header: 'KIND', get: (c) => c.kind},
  {header: 'STATUS', get: (c) => c.status},
  {header: 'NOT_AFTER', get: (c) => c.not_after},
  {header: 'REASON', get: (c) => c.revocation_reason},
]

export const certificatesView: View<CertificateRecord> = {
  rows: (r) => r as CertificateRecord[],
  name: (c) => `certificate/${c.serial}`,
  columns: certificateColumns,
}
