import { describe, expect, it } from 'vitest';
import { CLASSES, loadIris, trainIris } from '../model.js';
import { SETOSA_ROW, VIRGINICA_ROW } from './helpers.js';

describe('iris model', () => {
  it('loads the 150-row Fisher data set, 50 rows per class', () => {
    const data = loadIris();
    expect(data.x).toHaveLength(150);
    expect(CLASSES.map((_, c) => data.y.filter((y) => y === c).length)).toEqual([50, 50, 50]);
    // Column means of the classic table (sklearn's copy).
    const mean = (j: number): number => data.x.reduce((s, r) => s + (r[j] ?? 0), 0) / 150;
    expect(mean(0)).toBeCloseTo(5.843, 3);
    expect(mean(2)).toBeCloseTo(3.758, 3);
  });

  it('trains to at least 90 % training accuracy, deterministically and quickly', () => {
    const started = performance.now();
    const model = trainIris();
    const elapsed = performance.now() - started;
    expect(model.trainingAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(trainIris().trainingAccuracy).toBe(model.trainingAccuracy);
    expect(elapsed).toBeLessThan(1000); // budget is ~100 ms; generous for slow CI machines
  });

  it('classifies textbook setosa, versicolor and virginica rows', () => {
    const model = trainIris();
    expect(model.predict([SETOSA_ROW, [7.0, 3.2, 4.7, 1.4], VIRGINICA_ROW])).toEqual(['setosa', 'versicolor', 'virginica']);
  });

  it('is a real model: an untrained one (0 epochs) is no better than chance', () => {
    expect(trainIris(loadIris(), 0).trainingAccuracy).toBeLessThan(0.4);
  });
});
