"""Operations inside one cloud (as opposed to the engine, which moves tenants between clouds)."""
