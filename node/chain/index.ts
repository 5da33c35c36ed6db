// node/chain: typed access to the OpenLoRA contracts (ABIs from Hardhat's artifacts), deployment, EIP-712
// vouchers and the encrypted wallet keystore. Nothing here knows about inference.
export { adapterRegistryAbi, inferenceEscrowAbi, nodeRegistryAbi, openTokenAbi } from "./abi.ts";
export {
  DEFAULT_DEPLOY_PARAMS,
  deployAll,
  deploymentPath,
  getContracts,
  loadDeployment,
  saveDeployment,
  type AdapterRegistryContract,
  type ChainClients,
  type ContractAddresses,
  type ContractClients,
  type DeployParams,
  type Deployment,
  type InferenceEscrowContract,
  type NodeRegistryContract,
  type OpenTokenContract,
} from "./contracts.ts";
export {
  hashVoucher,
  recoverVoucherSigner,
  SkipReason,
  skipReasonName,
  type SkipReasonName,
  signVoucher,
  verifyVoucher,
  voucherDomain,
  voucherTypes,
  VOUCHER_DOMAIN_NAME,
  VOUCHER_DOMAIN_VERSION,
  type EscrowDomain,
  type Voucher,
  type VoucherSigner,
} from "./voucher.ts";
export {
  createKeystore,
  importKeystore,
  KeystoreError,
  loadKeystore,
  readKeystoreFile,
  writeKeystoreFile,
  type Keystore,
  type KeystoreOptions,
  type UnlockedWallet,
} from "./keystore.ts";
