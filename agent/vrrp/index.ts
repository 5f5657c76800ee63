export { listenVrrpFifo, parseTransition, type FifoListener, type Transition } from "./fifo";
export { startReassert, type ReassertOptions, type ReassertResult, type Reasserter } from "./reassert";
export { detectVrrpState } from "./detect";
