// The environment deploy/nats/patchcert-auth.conf reads its users' passwords from, for test servers.
export const DEPLOY_PASSWORDS = {
  PATCHCERT_COORDINATOR_PASSWORD: 'coord-pw',
  PATCHCERT_WORKER_PASSWORD: 'worker-pw',
  PATCHCERT_OPERATOR_PASSWORD: 'operator-pw',
  PATCHCERT_ADMIN_PASSWORD: 'admin-pw',
  NATS_SYS_PASSWORD: 'sys-pw',
};
