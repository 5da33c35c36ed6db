// Compile the contracts once, before any suite: builds started from several files race on Hardhat's cache.
import hre from "hardhat";

export default async function setup(): Promise<void> {
  await hre.tasks.getTask("build").run({ quiet: true });
}
