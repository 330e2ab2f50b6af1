// Pure certification core: geometry, encodings, votes, certificates, planning, merging, reports.
export * from './ablation.js';
export * from './encoding.js';
export * from './kept-view.js';
export * from './votes.js';
export * from './certificate.js';
export * from './plan.js';
export * from './merge.js';
export * from './report.js';
export * from './job.js';
export * from './records.js';
export * from './numeric-options.js';
