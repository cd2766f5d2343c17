"""The alignment pipeline, one way from input to result:

stack source (:mod:`cryocore.io`, read through :mod:`.reading`) -> per-chunk kernel
(:mod:`.kernel`, in block tasks :mod:`.tasks` run by an executor) -> mergeable spectral
sums (:mod:`.sums`) -> iteration driver (:mod:`.driver`, :mod:`.online`) -> result
(:mod:`.result`) -> outputs (:mod:`cryocore.output`).

Modules
-------
config       AlignConfig, SearchOptions: one definition of every option
chunks       chunks of the stack, the memory plan
reading      StackReader: a chunk's images or cached spectra, in any process
kernel       search_chunk, sum_chunk: the only calls into the C++ core
tasks        search_block, sum_block: the picklable tasks (blocks of chunks)
sums         SpectralSums: per (half, class, quarter) spectrum and weight sums
executor     Executor protocol, LocalExecutor
distributed  DaskExecutor, as_executor: the tasks on a dask cluster
state      AlignState and its checkpoint
driver     the iterations, the final averages, the result
online     the single online pass
selection  half-set split, score threshold
geometry   centre of mass, phase ramps, pose composition, half-to-half alignment
result     AlignResult
"""
