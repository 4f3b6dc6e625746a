"""ArtMancer's API (seed 002) on the task engine: request bodies (`models`), each request as a task (`mapping`,
`guide`), the seed's answers from a task (`results`). The routes: `functions/api_v1/routes/artmancer_*.py`."""
