// node/chain: typed access to the OpenLoRA contracts (ABIs from Hardhat's artifacts), deployment, listings,
// deposits, EIP-712 vouchers (and their HTTP header), node receipts, settlement outcomes and the encrypted wallet
// keystore. Nothing here knows about inference.
export { adapterRegistryAbi, inferenceEscrowAbi, nodeRegistryAbi, openTokenAbi } from "./generated/abi.ts";
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
export type { ReadClient } from "./read-client.ts";
export { listingIdOf, listingIdsOfContent, readListing, type Contribution, type ListingView } from "./listing.ts";
export { availableFor, readDeposit, type DepositView, type WithdrawalRequest } from "./deposit.ts";
export {
  findSettlement,
  settlementFromReceipt,
  settlementHistory,
  voucherOutcomes,
  type BatchTotals,
  type SettledVoucher,
  type SettlementReceipt,
  type SkippedVoucher,
  type VoucherOutcome,
} from "./settlement.ts";
export {
  eip712Domain,
  isCanonicalSignature,
  signerAddress,
  signTypedData,
  type Eip712Deployment,
  type TypedDataSigner,
} from "./eip712.ts";
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
  parseReceiptJson,
  RECEIPT_DOMAIN_NAME,
  RECEIPT_DOMAIN_VERSION,
  ReceiptFormatError,
  receiptJson,
  receiptTypes,
  signReceipt,
  verifyReceipt,
  type Receipt,
} from "./receipt.ts";
export {
  encodeVoucherHeader,
  MAX_VOUCHER_HEADER,
  parseVoucherHeader,
  VOUCHER_HEADER,
  VoucherHeaderError,
  type SignedVoucher,
} from "./voucher-header.ts";
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
