"""The initial schema: users and their API tokens, studies and their documents, uploads (provenance),
jobs and their documents, live studies.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_api_tokens_token_sha256'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('live_studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('live_key', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('study_design_hash', sa.String(length=64), nullable=True),
    sa.Column('study_created_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('state_json', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_live_studies_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_studies')),
    sa.UniqueConstraint('live_key', name=op.f('uq_live_studies_live_key'))
    )
    with op.batch_alter_table('live_studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_studies_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_studies_updated_at'), ['updated_at'], unique=False)

    op.create_table('studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_key', sa.String(length=64), nullable=False),
    sa.Column('study_design_hash', sa.String(length=64), nullable=True),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('slug', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('study_created_at', sa.DateTime(), nullable=True),
    sa.Column('study_finished_at', sa.DateTime(), nullable=True),
    sa.Column('llem_version', sa.String(length=64), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('n_jobs', sa.Integer(), nullable=False),
    sa.Column('n_results', sa.Integer(), nullable=False),
    sa.Column('index_entry_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_studies_owner_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies')),
    sa.UniqueConstraint('slug', name=op.f('uq_studies_slug')),
    sa.UniqueConstraint('study_key', name=op.f('uq_studies_study_key'))
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_studies_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_studies_study_design_hash'), ['study_design_hash'], unique=False)

    op.create_table('study_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('manifest_json', sa.Text(), nullable=True),
    sa.Column('leaderboard_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['studies.id'], name=op.f('fk_study_documents_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_documents'))
    )
    op.create_table('uploads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('client_llem_version', sa.String(length=64), nullable=True),
    sa.Column('client_python', sa.String(length=64), nullable=True),
    sa.Column('client_platform', sa.Text(), nullable=True),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('body_bytes', sa.Integer(), nullable=False),
    sa.Column('results_added', sa.Integer(), nullable=False),
    sa.Column('results_replaced', sa.Integer(), nullable=False),
    sa.Column('results_unchanged', sa.Integer(), nullable=False),
    sa.Column('environment_json', sa.Text(), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_uploads_study_id_studies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], name=op.f('fk_uploads_token_id_api_tokens'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_uploads_user_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads'))
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_uploads_study_id'), ['study_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_uploads_user_id'), ['user_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=True),
    sa.Column('job_id', sa.String(length=64), nullable=False),
    sa.Column('result_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('experiment_id', sa.Text(), nullable=True),
    sa.Column('config_hash', sa.String(length=64), nullable=True),
    sa.Column('backend', sa.Text(), nullable=True),
    sa.Column('model', sa.Text(), nullable=True),
    sa.Column('precision', sa.Text(), nullable=True),
    sa.Column('batch', sa.Integer(), nullable=True),
    sa.Column('device', sa.Text(), nullable=True),
    sa.Column('gpu_name', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('energy_measured', sa.Boolean(), nullable=True),
    sa.Column('energy_estimated', sa.Boolean(), nullable=True),
    sa.Column('synthetic', sa.Boolean(), nullable=True),
    sa.Column('energy_per_output_token_j', sa.Float(), nullable=True),
    sa.Column('energy_per_output_token_j_ci95_low', sa.Float(), nullable=True),
    sa.Column('energy_per_output_token_j_ci95_high', sa.Float(), nullable=True),
    sa.Column('energy_adjusted_per_output_token_j', sa.Float(), nullable=True),
    sa.Column('tokens_per_joule', sa.Float(), nullable=True),
    sa.Column('output_tokens_per_s', sa.Float(), nullable=True),
    sa.Column('energy_j', sa.Float(), nullable=True),
    sa.Column('llem_version', sa.String(length=64), nullable=True),
    sa.Column('schema_version', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_jobs_study_id_studies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_jobs_upload_id_uploads'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('study_id', 'job_id', name=op.f('uq_jobs_study_id_job_id')),
    sa.UniqueConstraint('study_id', 'result_sha256', name=op.f('uq_jobs_study_id_result_sha256'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_backend'), ['backend'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_batch'), ['batch'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_energy_per_output_token_j'), ['energy_per_output_token_j'], unique=False)
        batch_op.create_index('ix_jobs_gpu_backend_model', ['gpu_name', 'backend', 'model'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_gpu_name'), ['gpu_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_model'), ['model'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_precision'), ['precision'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_study_id'), ['study_id'], unique=False)

    op.create_table('job_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('result_json', sa.Text(), nullable=False),
    sa.Column('timeseries_json', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['id'], ['jobs.id'], name=op.f('fk_job_documents_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_documents'))
    )


def downgrade() -> None:
    op.drop_table('job_documents')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_study_id'))
        batch_op.drop_index(batch_op.f('ix_jobs_started_at'))
        batch_op.drop_index(batch_op.f('ix_jobs_precision'))
        batch_op.drop_index(batch_op.f('ix_jobs_model'))
        batch_op.drop_index(batch_op.f('ix_jobs_gpu_name'))
        batch_op.drop_index('ix_jobs_gpu_backend_model')
        batch_op.drop_index(batch_op.f('ix_jobs_energy_per_output_token_j'))
        batch_op.drop_index(batch_op.f('ix_jobs_batch'))
        batch_op.drop_index(batch_op.f('ix_jobs_backend'))

    op.drop_table('jobs')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uploads_user_id'))
        batch_op.drop_index(batch_op.f('ix_uploads_study_id'))

    op.drop_table('uploads')
    op.drop_table('study_documents')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_studies_study_design_hash'))
        batch_op.drop_index(batch_op.f('ix_studies_owner_id'))

    op.drop_table('studies')
    with op.batch_alter_table('live_studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_studies_updated_at'))
        batch_op.drop_index(batch_op.f('ix_live_studies_owner_id'))

    op.drop_table('live_studies')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('users')
